//! The Spin build (`edge/spin`) asks only for what a stable Spin 3.x gives a component, so a
//! real `spin up` would instantiate it: its imports (`wasm-tools component wit`) are all in
//! Spin's `platform` world, and it exports `wasi:http/incoming-handler@0.2.x`.
//!
//! `SPIN_WORLD` below is Spin's world (spinframework/spin `wit/world.wit`, `spin:up@3.6.0`,
//! without its `@unstable` WASIp3 parts): `wasi:cli/imports@0.2.6` (cli, clocks, filesystem,
//! io, random, sockets), `wasi:http/outgoing-handler@0.2.6`, `fermyon:spin/platform@2.0.0`,
//! `wasi:keyvalue/imports@0.2.0-draft2`, `spin:postgres` 3 and 4, `spin:sqlite@3.0.0` and
//! `wasi:config/store`. Spin links any 0.2.x WASI import to its 0.2.6 (semver-compatible).
//!
//! It also checks that `spin.toml` declares what the test host runs (wasm, store, origin,
//! file server routes), so the e2e suite on the test host tests the manifest's app.
//!
//! Needs the component (`scripts/build.sh spin`) and `wasm-tools` (`scripts/setup.sh test`);
//! without them it says so and passes, unless `REQUIRE_SPIN_BUILD=1` (scripts/test.sh).

use shop_e2e::{repo_root, SpinHost, SPIN_FILES};
use std::process::Command;

/// Packages and interfaces of Spin's stable world: `namespace:package/interface` with a version
/// prefix (`0.2.` accepts any 0.2.x); `*` for every interface of the package.
const SPIN_WORLD: &[(&str, &str)] = &[
    ("wasi:cli/*", "0.2."),
    ("wasi:clocks/*", "0.2."),
    ("wasi:filesystem/*", "0.2."),
    ("wasi:io/*", "0.2."),
    ("wasi:random/*", "0.2."),
    ("wasi:sockets/*", "0.2."),
    ("wasi:http/types", "0.2."),
    ("wasi:http/outgoing-handler", "0.2."),
    ("fermyon:spin/llm", "2.0.0"),
    ("fermyon:spin/redis", "2.0.0"),
    ("fermyon:spin/mqtt", "2.0.0"),
    ("fermyon:spin/postgres", "2.0.0"),
    ("fermyon:spin/mysql", "2.0.0"),
    ("fermyon:spin/sqlite", "2.0.0"),
    ("fermyon:spin/key-value", "2.0.0"),
    ("fermyon:spin/variables", "2.0.0"),
    ("fermyon:spin/rdbms-types", "2.0.0"),
    ("wasi:keyvalue/*", "0.2.0-draft2"),
    ("spin:postgres/postgres", "3.0.0"),
    ("spin:postgres/postgres", "4.0.0"),
    ("spin:sqlite/sqlite", "3.0.0"),
    ("wasi:config/store", "0.2.0-draft-2024-09-27"),
];

/// `ns:pkg/iface@version` → whether Spin's world has it.
fn spin_provides(import: &str) -> bool {
    let Some((name, version)) = import.split_once('@') else {
        return false;
    };
    let Some((package, _interface)) = name.split_once('/') else {
        return false;
    };
    SPIN_WORLD.iter().any(|(allowed, prefix)| {
        let name_matches = match allowed.strip_suffix("/*") {
            Some(allowed_package) => allowed_package == package,
            None => *allowed == name,
        };
        name_matches && version.starts_with(prefix)
    })
}

/// The `import X;` / `export X;` lines of the component's world.
fn world_items(wit: &str, keyword: &str) -> Vec<String> {
    wit.lines()
        .filter_map(|line| line.trim().strip_prefix(keyword)?.strip_prefix(' '))
        .map(|rest| rest.trim_end_matches(';').trim().to_string())
        .collect()
}

#[test]
fn the_world_check_matches_what_it_should() {
    assert!(spin_provides("wasi:http/outgoing-handler@0.2.0"));
    assert!(spin_provides("wasi:io/streams@0.2.6"));
    assert!(spin_provides("fermyon:spin/key-value@2.0.0"));
    assert!(
        !spin_provides("spin:key-value/key-value@3.0.0"),
        "spin-sdk 6+'s store is not in Spin 3.x"
    );
    assert!(
        !spin_provides("wasi:http/handler@0.3.0"),
        "WASIp3 is unstable in Spin 3.x"
    );
    assert!(!spin_provides("wasi:cli/environment@0.3.0-rc-2026-01-06"));
    assert!(!spin_provides("__wbindgen_placeholder__"));
    let wit = "world root {\n  import wasi:io/error@0.2.6;\n  import fermyon:spin/key-value@2.0.0;\n\n  export wasi:http/incoming-handler@0.2.0;\n}\n";
    assert_eq!(
        world_items(wit, "import"),
        ["wasi:io/error@0.2.6", "fermyon:spin/key-value@2.0.0"]
    );
    assert_eq!(
        world_items(wit, "export"),
        ["wasi:http/incoming-handler@0.2.0"]
    );
}

#[test]
fn the_spin_component_imports_only_what_spin_provides() {
    let required = std::env::var("REQUIRE_SPIN_BUILD").is_ok_and(|v| v == "1");
    let (component, _) = SpinHost::artifacts();
    let wasm_tools = std::env::var("WASM_TOOLS").unwrap_or_else(|_| "wasm-tools".into());
    let output = if component.exists() {
        Command::new(&wasm_tools)
            .current_dir(repo_root())
            .args(["component", "wit"])
            .arg(&component)
            .output()
            .ok()
    } else {
        None
    };
    let Some(output) = output else {
        assert!(
            !required,
            "need {} and {wasm_tools}: run scripts/setup.sh test and scripts/build.sh spin",
            component.display()
        );
        eprintln!(
            "skipped: {} or {wasm_tools} missing (scripts/build.sh spin)",
            component.display()
        );
        return;
    };
    assert!(
        output.status.success(),
        "wasm-tools component wit failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wit = String::from_utf8(output.stdout).expect("WIT is text");
    let imports = world_items(&wit, "import");
    assert!(!imports.is_empty(), "no imports found in:\n{wit}");
    let foreign: Vec<&String> = imports.iter().filter(|i| !spin_provides(i)).collect();
    assert!(
        foreign.is_empty(),
        "imports Spin 3.x does not provide: {foreign:?}\n{wit}"
    );
    assert!(
        imports.iter().any(|i| i == "fermyon:spin/key-value@2.0.0"),
        "no Spin key-value import: {imports:?}"
    );
    let exports = world_items(&wit, "export");
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2.")),
        "not an HTTP component: exports {exports:?}"
    );
}

/// The test host runs the component as `spin.toml` declares it: the same wasm, key-value store,
/// outbound origin, environment and file server routes.
#[test]
fn spin_toml_declares_what_the_test_host_runs() {
    let manifest =
        std::fs::read_to_string(repo_root().join("spin.toml")).expect("spin.toml at the top level");
    let (component, _) = SpinHost::artifacts();
    let source = component
        .strip_prefix(repo_root())
        .expect("the component is in the repo")
        .display()
        .to_string();
    for needle in [
        "spin_manifest_version = 2".to_string(),
        format!("source = \"{source}\""),
        "key_value_stores = [\"default\"]".to_string(),
        "allowed_outbound_hosts = [\"http://127.0.0.1:8080\"]".to_string(),
        "ORIGIN_URL = \"http://127.0.0.1:8080\"".to_string(),
        "command = \"bash scripts/build.sh spin\"".to_string(),
    ] {
        assert!(manifest.contains(&needle), "spin.toml lacks {needle}");
    }
    for (route, dir, cache_control) in SPIN_FILES {
        for needle in [
            format!("route = \"{route}...\""),
            format!("files = [{{ source = \"{dir}\", destination = \"/\" }}]"),
            format!("CACHE_CONTROL = \"{cache_control}\""),
        ] {
            assert!(manifest.contains(&needle), "spin.toml lacks {needle}");
        }
    }
}
