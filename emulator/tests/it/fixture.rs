//! Fixture parsing and the committed sample.

use rotor_emulator::Fixture;

#[test]
fn committed_sample_matches_the_embedded_one() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/fixtures/sample-tenant.json"
    );
    let on_disk = Fixture::from_file(std::path::Path::new(path)).unwrap();
    let embedded = Fixture::sample();
    assert_eq!(
        serde_json::to_value(&on_disk).unwrap(),
        serde_json::to_value(&embedded).unwrap()
    );
    let names: Vec<&str> = embedded
        .applications
        .iter()
        .map(|a| a.display_name.as_str())
        .collect();
    for n in [
        "MyApp",
        "billing-api",
        "orders-service",
        "data-pipeline",
        "reporting",
        "inventory",
        "orphan-app",
        "legacy-crm",
        "consumer-app",
    ] {
        assert!(names.contains(&n), "{n}");
    }
}

#[test]
fn malformed_fixture_names_the_json_path() {
    let err = Fixture::from_json(
        r#"{"applications":[{"display_name":"a"},{"display_name":"b","password_credentials":[{"start":"-1d","end":42}]}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "applications[1].password_credentials[0].end");
    let err = Fixture::from_json(
        r#"{"principals":[{"display_name":"x","graph_roles":"Application.Read.All"}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "principals[0].graph_roles");
    let err = Fixture::from_json(
        r#"{"vaults":[{"name":"kv-a","secrets":[{"name":"ok"},{"name":"ok"}]}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "vaults[0].secrets[1].name");
    let err = Fixture::from_json("{not json").unwrap_err();
    assert!(!err.message.is_empty());
}

#[tokio::test]
async fn generated_ids_and_secrets_when_absent() {
    let f = Fixture::from_json(r#"{"principals":[{"display_name":"p"}],"applications":[{"display_name":"a","password_credentials":[{}]}]}"#).unwrap();
    let emu = crate::common::start(f).await;
    let state = emu.state();
    let a = &state["applications"][0];
    assert_eq!(a["app_id"].as_str().unwrap().len(), 36);
    let p = &a["password_credentials"][0];
    let text = p["secret_text"].as_str().unwrap();
    assert_eq!(text.len(), 40);
    assert_eq!(&text[3..6], "8Q~");
    assert_eq!(p["hint"].as_str().unwrap(), &text[..3]);
    let env = &emu.endpoints().env;
    assert_eq!(
        env["AZURE_CLIENT_ID"],
        state["principals"][0]["client_id"].as_str().unwrap()
    );
    assert_eq!(env["ROTOR_KEYVAULT_VERIFY_CHALLENGE"], "false");
    assert_eq!(
        std::fs::read_to_string(&emu.endpoints().ca_file).unwrap(),
        emu.ca_pem()
    );
}
