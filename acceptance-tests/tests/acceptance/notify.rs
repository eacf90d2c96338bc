//! The provider's `notify` setting: a forced rotation posts one Slack message to a loopback
//! webhook (naming the application and the lineage, carrying no secret value), an apply that
//! changes nothing posts none, a failing webhook leaves the apply successful with a warning
//! naming only its host, and the webhook URL (its own credential) is in neither the state, the
//! plan nor the TF_LOG=trace log.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode, Uri};
use serde_json::Value;

use crate::secret_link::{CALM_APP_ID, fixture, vault};
use crate::support::{Tf, assert_no_secrets, emulator, passwords};

/// The secret part of the webhook URL.
const TOKEN: &str = "T0000/B0000/notify-sekrit-token-4711";

/// A loopback webhook: records every request (method, path, body) and answers `status`.
#[derive(Clone)]
struct Receiver {
    posts: Arc<Mutex<Vec<(Method, String, String)>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    /// Starts it; returns it and its base URL.
    async fn start() -> (Receiver, String) {
        let r = Receiver {
            posts: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let state = r.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: String| {
            let state = state.clone();
            async move {
                state
                    .posts
                    .lock()
                    .expect("posts")
                    .push((method, uri.path().to_string(), body));
                StatusCode::from_u16(state.status.load(Ordering::SeqCst))
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, format!("http://{addr}"))
    }

    fn posts(&self) -> Vec<(Method, String, String)> {
        self.posts.lock().expect("posts").clone()
    }
}

/// JSON pointers of the strings in `v` that contain `needle`.
fn paths_holding(v: &Value, needle: &str, at: &str) -> Vec<String> {
    match v {
        Value::String(s) if s.contains(needle) => vec![at.to_string()],
        Value::Array(a) => a
            .iter()
            .enumerate()
            .flat_map(|(i, x)| paths_holding(x, needle, &format!("{at}/{i}")))
            .collect(),
        Value::Object(o) => o
            .iter()
            .flat_map(|(k, x)| paths_holding(x, needle, &format!("{at}/{k}")))
            .collect(),
        _ => Vec::new(),
    }
}

fn config(vault_url: &str, trigger: &str) -> String {
    format!(
        r#"variable "slack_webhook" {{
  type      = string
  sensitive = true
}}

provider "rotor" {{
  notify = {{
    slack    = var.slack_webhook
    on       = "always"
    attempts = "2"
  }}
}}

resource "rotor_secret_link" "billing" {{
  application_id          = "{CALM_APP_ID}"
  credential_display_name = "prod"
  targets = [{{ vault_url = "{vault_url}", secret_name = "billing-api-client-secret" }}]
  rotate_when_changed = {{ epoch = "{trigger}" }}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_posts_one_slack_message_per_rotating_apply_and_a_failing_webhook_only_warns() {
    let em = emulator(fixture()).await;
    let (hook, base) = Receiver::start().await;
    let url = format!("{base}/services/{TOKEN}");
    let host = base.trim_start_matches("http://").to_string();
    let mut tf = Tf::new(Some(&em));
    tf.set_env("TF_VAR_slack_webhook", &url);
    tf.set_env("TF_LOG", "trace");
    let log_path = tf.path().join("tf.log");
    tf.set_env("TF_LOG_PATH", &log_path.display().to_string());
    let vault_url = vault(&em, "kv-prod");

    // Create adopts the calm credential: nothing rotated, nothing to tell.
    tf.config(&config(&vault_url, "1"));
    tf.apply().await.ok();
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 1, "create adopts");
    assert!(hook.posts().is_empty(), "{:?}", hook.posts());

    // A forced rotation: exactly one Slack message, at the configured URL.
    tf.config(&config(&vault_url, "2"));
    let (plan, _) = tf.plan_json().await;
    // Terraform itself records input variables' values in a plan file (`variables`); nothing
    // the provider returns (planned values, changes, prior state, configuration) may hold it.
    let holding = paths_holding(&plan, TOKEN, "");
    assert!(
        holding.iter().all(|p| p.starts_with("/variables/")),
        "the plan holds the webhook token at {holding:?}"
    );
    let mut plan_outside_variables = plan.clone();
    plan_outside_variables["variables"] = Value::Null;
    let plan_text = plan_outside_variables.to_string();
    let applied = tf.apply().await.ok();
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 2, "rotated");
    let posts = hook.posts();
    assert_eq!(posts.len(), 1, "one message per apply: {posts:?}");
    let (method, path, body) = &posts[0];
    assert_eq!(method, Method::POST);
    assert_eq!(path, &format!("/services/{TOKEN}"));
    let msg: Value = serde_json::from_str(body).expect("a JSON body");
    let text = msg["text"].as_str().expect("Slack `text`");
    assert!(text.contains("1 rotated, 0 failed"), "{text}");
    assert!(
        text.contains("billing-api"),
        "names the application: {text}"
    );
    assert!(
        text.contains(CALM_APP_ID) && text.contains("prod`"),
        "names the lineage: {text}"
    );
    assert_no_secrets(&em, "the Slack message", body);
    assert!(
        !applied.output().contains("notifying the"),
        "a delivered message warns of nothing:\n{}",
        applied.output()
    );

    // The webhook fails (500, retried once): the rotation still succeeds, with a warning that
    // names the host only.
    hook.status.store(500, Ordering::SeqCst);
    tf.config(&config(&vault_url, "3"));
    let failing = tf.apply().await.ok();
    assert_eq!(passwords(&em, CALM_APP_ID).len(), 3, "rotated again");
    assert_eq!(hook.posts().len(), 1 + 2, "attempts = 2");
    let out = failing.output();
    assert!(out.contains("Warning:"), "{out}");
    assert!(
        out.contains(&format!("notifying the Slack webhook at {host}")),
        "{out}"
    );
    assert!(out.contains("500"), "{out}");
    for (what, text) in [
        ("the apply output", out.as_str()),
        ("the create/rotate apply output", &applied.output()),
    ] {
        assert!(
            !text.contains(TOKEN),
            "{what} holds the webhook token:\n{text}"
        );
    }

    // The URL is a secret: nowhere in state, plan or the trace log.
    let log = std::fs::read_to_string(&log_path).expect("TF_LOG_PATH written");
    assert!(
        log.contains(&format!("Slack notification sent to {host}")),
        "the trace log has the provider's notification line (with the host only)"
    );
    for (what, text) in [
        ("terraform.tfstate", tf.state_text()),
        (
            "terraform show -json (plan, outside `variables`)",
            plan_text,
        ),
        ("the TF_LOG=trace log", log),
    ] {
        assert!(!text.contains(TOKEN), "{what} holds the webhook token");
        assert_no_secrets(&em, what, &text);
    }
}
