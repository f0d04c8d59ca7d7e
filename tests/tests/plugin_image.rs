//! Plugins loaded from images (`wrun-plugin`'s `load_image`), through the
//! same store and pull as `wrun pull`, against a real `docker-registry`:
//! an image whose layer is the `upper` sample plugin is pulled and called;
//! an image `wrun pull` stored is loaded with the registry gone; images that
//! hold no plugin, and references that name nothing, are typed errors.

use std::path::Path;
use wrun_plugin::image::{PullOptions, PullPolicy};
use wrun_plugin::{Error, Grants, HostConfig, Plugin, PluginHost, Request};
use wrun_plugin_samples::{UPPER, WRONG_WORLD};
use wrun_tests::fixture;
use wrun_tests::{Env, Registry};

/// A registry holding the `upper` sample plugin as `plugins/upper:<tag>`,
/// and that reference (or `None`: skipped without the registry's tools).
fn upper_image(tag: &str) -> Option<(Registry, String)> {
    let reg = Registry::start_if_installed()?;
    let name = format!("plugins/upper:{tag}");
    reg.push_image(&name, &fixture::wasm_artifact(UPPER.bytes));
    let reference = reg.reference(&name);
    Some((reg, reference))
}

fn host() -> PluginHost {
    let mut config = HostConfig::new();
    config.max_instances(8).on_log(|_| {});
    PluginHost::new(&config).expect("plugin host")
}

fn load(root: &Path, reference: &str, policy: PullPolicy) -> Result<Plugin, Error> {
    host().load_image(root, reference, policy, &PullOptions::default())
}

/// Calls `upper` on `plugin` and returns the answer as text.
fn upper(plugin: &Plugin, text: &str) -> String {
    let mut instance = plugin.instantiate(&Grants::new()).expect("instance");
    let response = instance
        .call(Request::new("upper", text))
        .expect("call the plugin");
    assert_eq!(response.content_type, "text/plain");
    String::from_utf8(response.payload).expect("a UTF-8 answer")
}

#[test]
fn a_plugin_image_is_pulled_into_wruns_store_and_called() {
    let Some((reg, reference)) = upper_image("1") else {
        return;
    };
    let env = Env::new();

    let plugin = load(env.root(), &reference, PullPolicy::Missing).expect("load the image");
    assert_eq!(plugin.name(), "upper");
    assert_eq!(upper(&plugin, "hello, image"), "HELLO, IMAGE");

    // It went into the store `wrun` uses, as `wrun pull` would have put it.
    let images = env.images();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(env.inspect(&reference)["kind"], "wasm");

    // Stored now: loaded again with the registry gone.
    drop(reg);
    for policy in [PullPolicy::Missing, PullPolicy::Never] {
        let plugin = load(env.root(), &reference, policy).expect("load from the store");
        assert_eq!(upper(&plugin, "again"), "AGAIN");
    }
    // Except when a pull is asked for every time.
    assert!(matches!(
        load(env.root(), &reference, PullPolicy::Always),
        Err(Error::Image { .. })
    ));
}

#[test]
fn an_image_stored_by_wrun_pull_loads_without_the_registry() {
    let Some((reg, reference)) = upper_image("2") else {
        return;
    };
    let env = Env::new();
    env.ok(&["pull", "-q", &reference]);
    drop(reg);

    let plugin = load(env.root(), &reference, PullPolicy::Never).expect("load the pulled image");
    assert_eq!(upper(&plugin, "pulled by wrun"), "PULLED BY WRUN");
}

#[test]
fn an_image_that_holds_no_plugin_is_a_typed_error() {
    let Some(reg) = Registry::start_if_installed() else {
        return;
    };
    let module =
        wat::parse_file(Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/wasm/hello.wat"))
            .expect("compile samples/wasm/hello.wat");
    reg.push_image("plugins/module:1", &fixture::wasm_artifact(&module));
    reg.push_image("plugins/native:1", &fixture::small_image("native"));
    reg.push_image(
        "plugins/wrong-world:1",
        &fixture::wasm_artifact(WRONG_WORLD.bytes),
    );
    let env = Env::new();

    let reference = reg.reference("plugins/module:1");
    match load(env.root(), &reference, PullPolicy::Missing) {
        Err(err @ Error::NotAPlugin { .. }) => assert_eq!(
            err.to_string(),
            format!(
                "image {reference} is not a plugin: its wasm payload is a core module, not a component"
            )
        ),
        other => panic!("expected NotAPlugin, got {other:?}"),
    }

    let reference = reg.reference("plugins/native:1");
    match load(env.root(), &reference, PullPolicy::Missing) {
        Err(Error::NotAPlugin {
            reference: r,
            reason,
        }) => {
            assert_eq!(r, reference);
            assert_eq!(reason, "it is a native image");
        }
        other => panic!("expected NotAPlugin, got {other:?}"),
    }

    // A component, but of another world: refused as a file of it would be.
    let reference = reg.reference("plugins/wrong-world:1");
    match load(env.root(), &reference, PullPolicy::Missing) {
        Err(Error::WrongWorld { plugin, missing }) => {
            assert_eq!(plugin, "wrong-world");
            assert_eq!(missing, wrun_plugin::HANDLER);
        }
        other => panic!("expected WrongWorld, got {other:?}"),
    }
}

#[test]
fn a_reference_that_names_nothing_is_a_typed_error() {
    let Some((reg, _)) = upper_image("1") else {
        return;
    };
    let env = Env::new();

    let reference = reg.reference("plugins/upper:nope");
    match load(env.root(), &reference, PullPolicy::Missing) {
        Err(Error::Image {
            reference: r,
            source,
        }) => {
            assert_eq!(r, reference);
            assert!(
                matches!(*source, wrun_image::Error::ManifestUnknown { .. }),
                "{source:?}"
            );
        }
        other => panic!("expected an unknown manifest, got {other:?}"),
    }

    // Never pulls: an image that is not stored is not fetched.
    let reference = reg.reference("plugins/upper:1");
    match load(env.root(), &reference, PullPolicy::Never) {
        Err(err @ Error::Image { .. }) => {
            assert_eq!(
                err.to_string(),
                format!("cannot get plugin image {reference}")
            );
            let source = std::error::Error::source(&err).map(ToString::to_string);
            assert_eq!(
                source,
                Some(format!(
                    "image {reference} is not in the store (and the pull policy is never)"
                ))
            );
        }
        other => panic!("expected NotStored, got {other:?}"),
    }
    assert!(env.images().is_empty());
}
