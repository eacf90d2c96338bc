//! Registry distribution: `provider/scripts/package.sh` produces the Registry's release layout
//! (zip per platform, `_manifest.json` with protocol 6.0, `_SHA256SUMS` and its GPG signature,
//! signed here with a throwaway key) and a `filesystem_mirror`; real Terraform 1.0.3 installs the
//! provider from that mirror with `terraform init` — no `dev_overrides` — records the zip's hash
//! in `.terraform.lock.hcl`, and applies.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::secret_link::{CALM_APP_ID, CALM_KEY, fixture, vault};
use crate::support::{Tf, emulator, passwords, provider_dir, workspace_root};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Terraform's `h1:` hash of a package: sha256 over the sorted lines `<sha256 hex>  <name>\n`
/// of the files it contains (Go's dirhash.Hash1), base64.
fn h1(files: &[(&str, &[u8])]) -> String {
    let mut lines: Vec<String> = files
        .iter()
        .map(|(name, bytes)| format!("{:x}  {name}\n", Sha256::digest(bytes)))
        .collect();
    lines.sort();
    let sum = Sha256::digest(lines.concat().as_bytes());
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(sum)
    )
}

fn throwaway_key(gnupg: &Path) -> String {
    if Command::new("gpg").arg("--version").output().is_err() {
        panic!("gpg is needed to sign the release in this test: apt-get install gnupg");
    }
    run(Command::new("gpg")
        .env("GNUPGHOME", gnupg)
        .args(["--batch", "--passphrase", "", "--quick-gen-key"])
        .args([
            "rotor release test <release-test@example.invalid>",
            "ed25519",
            "sign",
            "1d",
        ]));
    let listing = run(Command::new("gpg").env("GNUPGHOME", gnupg).args([
        "--batch",
        "--with-colons",
        "--list-secret-keys",
    ]));
    listing
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_string())
        })
        .expect("fingerprint")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_terraform_init_installs_from_the_mirror_and_applies() {
    let work = tempfile::tempdir().expect("tempdir");
    let gnupg = work.path().join("gnupg");
    std::fs::create_dir_all(&gnupg).expect("gnupg dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    let key = throwaway_key(&gnupg);
    let dist = work.path().join("dist");
    let mirror = work.path().join("mirror");
    let binary = provider_dir().join("terraform-provider-rotor");
    run(
        Command::new(workspace_root().join("provider/scripts/package.sh"))
            .env("GNUPGHOME", &gnupg)
            .args(["--version", VERSION, "--gpg-key", &key])
            .arg("--out")
            .arg(&dist)
            .arg("--mirror")
            .arg(&mirror)
            .arg("--binary")
            .arg(format!("linux_amd64={}", binary.display())),
    );

    // The release layout.
    let base = format!("terraform-provider-rotor_{VERSION}");
    let zip = format!("{base}_linux_amd64.zip");
    for f in [
        &zip,
        &format!("{base}_manifest.json"),
        &format!("{base}_SHA256SUMS"),
        &format!("{base}_SHA256SUMS.sig"),
    ] {
        assert!(dist.join(f).is_file(), "{f} missing in {}", dist.display());
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dist.join(format!("{base}_manifest.json"))).expect("manifest"),
    )
    .expect("manifest JSON");
    assert_eq!(
        manifest["metadata"]["protocol_versions"],
        serde_json::json!(["6.0"])
    );
    let sums = std::fs::read_to_string(dist.join(format!("{base}_SHA256SUMS"))).expect("sums");
    assert!(
        sums.contains(&zip) && sums.contains("_manifest.json"),
        "{sums}"
    );
    run(Command::new("sha256sum")
        .current_dir(&dist)
        .args(["-c", &format!("{base}_SHA256SUMS")]));
    let verify = run(Command::new("gpg")
        .env("GNUPGHOME", &gnupg)
        .current_dir(&dist)
        .args([
            "--batch",
            "--verify",
            &format!("{base}_SHA256SUMS.sig"),
            &format!("{base}_SHA256SUMS"),
        ]));
    assert!(verify.contains("Good signature"), "{verify}");
    assert!(
        mirror
            .join("registry.terraform.io/certifyclouds/rotor")
            .join(&zip)
            .is_file()
    );

    // terraform init from the mirror only (no dev_overrides), then apply.
    let em = emulator(fixture()).await;
    let tf = Tf::new(Some(&em));
    tf.write(
        ".terraformrc",
        &format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/certifyclouds/rotor\"]\n  }}\n}}\n",
            mirror.display()
        ),
    );
    tf.write(
        "main.tf",
        &format!(
            "terraform {{\n  required_providers {{\n    rotor = {{\n      source  = \"certifyclouds/rotor\"\n      version = \"{VERSION}\"\n    }}\n  }}\n}}\n\nprovider \"rotor\" {{}}\n\nresource \"rotor_secret_link\" \"billing\" {{\n  application_id          = \"{CALM_APP_ID}\"\n  credential_display_name = \"prod\"\n  targets = [{{ vault_url = \"{}\", secret_name = \"billing-api-client-secret\" }}]\n}}\n",
            vault(&em, "kv-prod")
        ),
    );
    let init = tf.run(&["init", "-input=false", "-no-color"]).await.ok();
    let out = init.output();
    assert!(!out.contains("development overrides"), "{out}");
    assert!(
        out.contains(&format!("Installed certifyclouds/rotor v{VERSION}")),
        "{out}"
    );
    let lock = std::fs::read_to_string(tf.path().join(".terraform.lock.hcl")).expect("lock file");
    assert!(
        lock.contains("provider \"registry.terraform.io/certifyclouds/rotor\""),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("version     = \"{VERSION}\"")),
        "{lock}"
    );
    let bytes = std::fs::read(&binary).expect("binary");
    let expected = h1(&[(&format!("terraform-provider-rotor_v{VERSION}"), &bytes)]);
    assert!(
        lock.contains(&expected),
        "lock file records the package's hash {expected}:\n{lock}"
    );

    let apply = tf.apply().await.ok();
    assert!(
        !apply.output().contains("development overrides"),
        "{}",
        apply.output()
    );
    assert_eq!(
        tf.resource("rotor_secret_link.billing")["current_key_id"],
        CALM_KEY
    );
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 1);
}
