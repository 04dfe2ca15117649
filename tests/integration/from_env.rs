//! `SovendusConfig::from_env`. The environment is process-wide: the test runs in a process of
//! its own.

use tower_sovendus::SovendusConfig;

use crate::common;

fn set(name: &str, value: Option<&str>) {
    // SAFETY: this process runs this one test on one thread (`ran_in_own_process`), so
    // nothing reads the environment concurrently.
    unsafe {
        match value {
            Some(value) => std::env::set_var(name, value),
            None => std::env::remove_var(name),
        }
    }
}

#[test]
fn reads_the_environment_and_names_what_is_missing() {
    if common::ran_in_own_process("from_env::reads_the_environment_and_names_what_is_missing") {
        return;
    }
    set("SOVENDUS_PRODUCT_ID", None);
    set("SOVENDUS_API_KEY", None);
    set("SOVENDUS_ENDPOINT", None);
    assert_eq!(SovendusConfig::from_env().unwrap_err().field(), "product_id");

    set("SOVENDUS_PRODUCT_ID", Some("9bc72425-902c-3abf-9db8-8b186d7cb160"));
    let error = SovendusConfig::from_env().unwrap_err();
    assert_eq!(error.field(), "api_key");
    assert!(error.to_string().contains("SOVENDUS_API_KEY is not set"), "{error}");

    set("SOVENDUS_API_KEY", Some("XXXX-XXXXX-XXXXXX-ABCD"));
    let config = SovendusConfig::from_env().unwrap();
    assert_eq!(config.product_ids()[0].as_str(), "9bc72425-902c-3abf-9db8-8b186d7cb160");
    assert_eq!(config.endpoint().as_str(), "https://press-order-api.sovendus.com/");
    assert_eq!(config.api_key().to_string(), "****ABCD");

    set("SOVENDUS_ENDPOINT", Some("http://127.0.0.1:9/"));
    assert_eq!(SovendusConfig::from_env().unwrap().endpoint().as_str(), "http://127.0.0.1:9/");

    set("SOVENDUS_ENDPOINT", Some("ftp://example"));
    let error = SovendusConfig::from_env().unwrap_err();
    assert_eq!(error.field(), "endpoint");
    assert!(!error.to_string().contains("ABCD"), "no key in errors: {error}");
}
