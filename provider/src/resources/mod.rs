//! The registry: every resource and data source the provider serves. To add one, write its
//! module (schema, plan, apply, read, import and unit tests side by side) and list it here.

pub mod applications;
pub mod certificate_link;
pub mod diag;
pub mod link;
pub mod matches;
pub mod policy;
pub mod secret_link;

use std::sync::Arc;

use crate::framework::{DataSource, Resource};

/// Every managed resource type.
pub fn resources() -> Vec<Arc<dyn Resource>> {
    vec![
        Arc::new(link::LinkResource(
            certificate_link::CertificateLinkResource,
        )),
        Arc::new(policy::PolicyResource),
        Arc::new(link::LinkResource(secret_link::SecretLinkResource)),
    ]
}

/// Every data source type.
pub fn data_sources() -> Vec<Arc<dyn DataSource>> {
    vec![
        Arc::new(applications::ApplicationsDataSource),
        Arc::new(matches::MatchesDataSource),
    ]
}

/// Example configurations shown in the generated docs: `(kind, type name, HCL)`. Kind is
/// `provider`, `resource` or `data source`. Each is a file under `examples/terraform/`, exercised
/// by the acceptance tests.
pub fn doc_examples() -> Vec<(&'static str, &'static str, &'static str)> {
    const PROVIDER: &str = include_str!("../../../examples/terraform/provider/main.tf");
    const ONE_LINK: &str =
        include_str!("../../../examples/terraform/one-link-three-vaults/main.tf");
    const POLICY: &str = include_str!("../../../examples/terraform/policy-with-exclusions/main.tf");
    const DISCOVERY: &str = include_str!("../../../examples/terraform/discovery-for-each/main.tf");
    const CERTIFICATE: &str = include_str!("../../../examples/terraform/certificate-link/main.tf");
    vec![
        ("provider", "rotor", PROVIDER),
        ("resource", "rotor_policy", POLICY),
        ("resource", "rotor_secret_link", ONE_LINK),
        ("resource", "rotor_certificate_link", CERTIFICATE),
        ("data source", "rotor_matches", DISCOVERY),
        ("data source", "rotor_applications", DISCOVERY),
    ]
}
