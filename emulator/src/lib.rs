//! # rotor-emulator
//!
//! A local, stateful stand-in for Entra ID (token endpoint), Microsoft Graph v1.0
//! `applications`, Azure Key Vault (secrets, some certificates) and the bit of ARM that lists
//! vaults — over real HTTPS, so the official Azure SDK crates work against it unchanged. rotor's
//! tests, the `rotor demo` command and the Terraform acceptance suite all run against it.
//!
//! ## Routes
//!
//! The **main** listener (`https://127.0.0.1:PORT`) serves the token endpoint, Graph, ARM and the
//! admin API. **Every vault has its own listener** (`https://127.0.0.1:PORT2/`), so vault URLs have
//! no path prefix. Anything else answers **501** naming the method and path.
//!
//! | route | auth | behaviour | fidelity |
//! |---|---|---|---|
//! | `POST /{tenant}/oauth2/v2.0/token` | form: `client_id` + `client_secret` (or HTTP Basic) or `client_assertion` | client-credentials grant; `scope` must be `<resource>/.default` (Graph, Key Vault, ARM, or the emulator's own URLs). Returns `{token_type, expires_in: 3600, ext_expires_in, access_token}`; Entra errors `{error, error_description: "AADSTSnnn: …", error_codes}` (see below) | modelled: federated assertions verified against the issuer's signing key (RS256, `kid`, `iss`, `sub`, `aud`, `exp`, `nbf`; the emulator plays every issuer, see Identity), certificate assertions by signature (RS256/PS256, `x5t`/`x5t#S256`, `aud`, `exp`); simplified: tokens are opaque table entries (unsigned), issuer keys are not fetched from a JWKS URL |
//! | `GET /{tenant}/v2.0/.well-known/openid-configuration` | none | OIDC metadata naming the token endpoint (for MSAL-style clients) | simplified: the fields MSAL-style clients read |
//! | `GET /v1.0/applications` | Graph token; `Application.Read.All`, `Application.ReadWrite.All` (or `…OwnedBy`: owned apps only) | list; `$top` 1–999 (default 100), absolute `@odata.nextLink` with `$skiptoken`, `$select`, `$filter` (`appId`/`id`/`displayName`/`signInAudience` with `eq`, `in`, `startswith()`, `and`, `or`) | modelled: paging, `$select`, `$count`/`$search`/`$orderby` as Graph takes them (below), times in UTC with 7 fractional digits, new passwords and key credentials missing for `graph_read_delay_ms`; simplified: the `$filter` subset listed |
//! | `GET /v1.0/applications/{id}`, `GET /v1.0/applications(appId='{appId}')` | Graph read | one application (404 `Request_ResourceNotFound`); `$select` | modelled: malformed ids → 400 `Request_BadRequest`; `keyCredentials[].key` only here, under `$select=keyCredentials`; eventual consistency as for lists |
//! | `POST …/addPassword` | Graph write (`ReadWrite.All`, or `ReadWrite.OwnedBy` + owner) | new password: random 40-char `secretText` (returned once), `hint` = first 3 chars, `keyId`, default lifetime 2 years. Apps whose `signInAudience` accepts personal accounts are capped at 2 passwords → 400 `TooManyAppPasswords`. The new secret logs in only after the propagation delay. With the fixture's `max_password_lifetime_days`, longer lifetimes → 400 `CredentialInvalidLifetimeAsPerAppPolicy` | modelled: caps, policy, propagation delay before login, eventual consistency of reads |
//! | `GET /v1.0/servicePrincipals`, `GET /v1.0/servicePrincipals/{id}`, `GET /v1.0/servicePrincipals(appId='{appId}')` | Graph read (`Application.Read.All` and up) | the principals and every application with `service_principal: true` (`id`, `appId`, `displayName`); `$filter` as for applications, `$top` (no further paging); 404 when an app has no service principal | simplified: `id`, `appId`, `displayName` only |
//! | `POST …/removePassword` | Graph write | `{keyId}` → 204; unknown keyId → 404 `Request_ResourceNotFound` | modelled |
//! | `POST …/addKey`, `POST …/removeKey` (by `{id}` or `(appId=…)`) | Graph write, or the application itself (it may roll its own keys) | `{keyCredential: {type: AsymmetricX509Cert, usage: Verify, key: base64 DER}, passwordCredential: null, proof}` → 200 keyCredential / `{keyId, proof}` → 204. The `proof` JWT must be signed (RS256/PS256) by one of the app's currently valid certificates, with `aud` `00000002-0000-0000-c000-000000000000`, `iss` the app's object id, `nbf` ≤ now < `exp` ≤ `nbf` + 10 min, no `=` padding; otherwise 401 `Authentication_MissingOrMalformed` | modelled; simplified: `X509CertAndPassword`/`Sign` refused |
//! | `PATCH /v1.0/applications/{id}` (or `(appId=…)`) | Graph write | `keyCredentials` replaces the collection (existing entries may be sent back by `keyId` without `key`; new ones need `key` = base64 DER, thumbprint and dates derive from it), `displayName`, `tokenEncryptionKeyId`; `passwordCredentials` is refused → 204 | simplified: only `keyCredentials`, `displayName` and `tokenEncryptionKeyId` |
//! | `GET /subscriptions` | ARM token | subscriptions the principal may read | simplified |
//! | `GET /subscriptions/{sub}/resources?$filter=resourceType eq 'Microsoft.KeyVault/vaults'&api-version=…` | ARM token; principal's `subscription_roles` (absent: all) | `{value:[{id,name,type,location,properties:{vaultUri}}]}` with the emulator's vault URLs; 404 `SubscriptionNotFound`, 403 `AuthorizationFailed` | simplified: only the Key Vault resource-type filter |
//! | `GET /subscriptions/{sub}[/resourceGroups/{rg}]/providers/Microsoft.KeyVault/vaults[/{name}]` | ARM token | same vault objects | simplified |
//! | vault `PUT /secrets/{name}` | Key Vault token; Secrets Officer / Administrator | new version (32-hex id); name `^[0-9a-zA-Z-]{1,127}$`, value ≤ 25 KiB, ≤ 15 tags (key ≤ 512, value ≤ 256 chars), contentType ≤ 255 → 400 `BadParameter`; soft-deleted name → 409 `Conflict` / `ObjectIsDeletedButRecoverable` | modelled: limits; 409 `ObjectIsBeingDeleted` while a delete or a purge is in progress |
//! | vault `GET /secrets/{name}`, `GET /secrets/{name}/`, `GET /secrets/{name}/{version}` | Secrets User / Officer / Administrator (and Certificate User) | SecretBundle with value; a certificate's backing secret adds `kid`, `managed: true` and, from its second version on, `previousVersion` (the certificate version before it; 2025-07-01, also on deleted-secret bundles, never on list items); 404 `SecretNotFound`; disabled version → 403 `Forbidden` | modelled; a just-recovered secret is 404 for `recover_delay_ms` |
//! | vault `PATCH /secrets/{name}/{version}` | Officer / Administrator | update `contentType`, `attributes` (`enabled`, `nbf`, `exp`), `tags` (replaced) → bundle without value | modelled |
//! | vault `GET /secrets`, `GET /secrets/{name}/versions` | any secrets role or Key Vault Reader | items without values; `maxresults` 1–25 (default 25), absolute `nextLink` | modelled: versions in a seeded order unlike creation (`version_order`), seeded empty pages with a `nextLink` (`empty_page_probability`) |
//! | vault `DELETE /secrets/{name}` | Officer / Administrator | soft delete → DeletedSecretBundle (`recoveryId`, `deletedDate`, `scheduledPurgeDate`) | modelled: the deletion takes `delete_delay_ms` (not yet among deleted, 409 meanwhile); simplified: never purged automatically |
//! | vault `GET /deletedsecrets`, `GET /deletedsecrets/{name}` | Reader and up | deleted secrets | modelled: only once the deletion is over |
//! | vault `POST /deletedsecrets/{name}/recover`, `DELETE /deletedsecrets/{name}` | Officer / Administrator | recover (→ bundle) / purge (→ 204) | modelled: 409 `ObjectIsBeingDeleted` during the deletion; a purge blocks the name for `purge_delay_ms` |
//! | vault `POST /certificates/{name}/create` | Certificates Officer / Administrator | self-signed certificate from the policy (`x509_props.subject` CN, `validity_months`; `key_props.kty` `RSA` (default; `key_size` 2048/3072/4096) or `EC` P-256): 202 with the operation `inProgress` and its `csr` (base64 DER), `Retry-After` and `retry-after-ms`, `Location`; after the fidelity's `certificate_delay_ms` it is `completed` and the version and its managed backing secret (PEM of key and certificate, `kid`) exist; a create while an operation is pending → 409 `Conflict` (as Key Vault answers) | modelled; simplified: issuer `Self` only, PEM backing secret (no PKCS#12) |
//! | vault `POST /certificates/{name}/import` | Certificates Officer / Administrator (`certificates/import/action`) | `{value, pwd?, policy?, attributes?, tags?}`: `value` a base64 PFX (PKCS#12, `pwd` its password; wrong → 400 naming `pwd`) or PEM with a **PKCS#8** key and the certificate(s) (PKCS#1/SEC1 keys → 400 naming PKCS#8); the certificate whose key it is becomes the leaf. → 200 CertificateBundle of a new, at once completed version (no pending operation: `…/pending` 404), its key (`keys/{name}/{version}`, signs as above) and managed backing secret: PFX input → `application/x-pkcs12`, a base64 PFX without password; PEM input → `application/x-pem-file` (key, leaf, chain); `policy.secret_props.contentType` chooses either. Default policy read from the certificate (`subject`, `validity_months`, `key_size`, issuer `Unknown`) under the given fields; `nbf`/`exp` from its validity. No key, key not matching any certificate, non-RSA key → 400 `BadParameter` naming the reason | modelled; simplified: RSA keys only (EC refused: Entra accepts only RSA certificates); `preserveCertOrder` ignored |
//! | vault `GET /certificates/{name}/pending` | Certificates Officer / Certificate User / Reader / Administrator | the operation: `inProgress` (with `csr`, `Retry-After`, `retry-after-ms`) until it completes, then `completed` with `target` | modelled |
//! | vault `GET /certificates[/{name}[/{version}\|/versions]]` | same | CertificateBundle (`x5t` base64url SHA-1, `cer` base64 DER, `kid`, `sid`, `contentType` of the backing secret, policy) / lists; versions still in progress are not shown | simplified |
//! | vault `GET /keys/{name}`, `GET /keys/{name}/{version}` | Crypto User / Crypto Officer / Certificate User / Reader / Administrator (`keys/read`) | every completed certificate version's key is the key of the same name and version (the certificate's `kid`): KeyBundle: `key` = `{kid, kty: "RSA", n, e, key_ops: [sign, verify, wrapKey, unwrapKey, encrypt, decrypt]}` (EC P-256: `crv`, `x`, `y`, `key_ops` `[sign, verify]`), `attributes` (the certificate version's `enabled`, `nbf`, `exp`, `created`, `updated`, plus `exportable`, `recoverableDays`, `recoveryLevel`), `tags`, `managed: true`; unknown name or version → 404 `KeyNotFound`; disabled → 403 `Forbidden` / `KeyDisabled` | modelled; not modelled: stand-alone keys (create/import/update/delete/rotate) |
//! | vault `GET /keys`, `GET /keys/{name}/versions` | same | KeyItems `{kid, attributes, tags, managed: true}` (latest per certificate / every completed version, in the fidelity's `version_order`), `maxresults` ≤ 25, seeded empty pages as for secrets | modelled |
//! | vault `POST /keys/{name}/{version}/sign` (empty or absent version: latest; one `by_route` label `POST /keys/{name}/{version}/sign`) | Crypto User / Crypto Officer / Administrator (`keys/sign/action`; *not* Certificates Officer, Certificate User or Reader) | `{alg, value: base64url digest}` → `{kid, value: base64url signature}`; Key Vault signs a **pre-computed digest**: `RS256`/`PS256` take 32 bytes, `RS384`/`PS384` 48, `RS512`/`PS512` 64 (PSS salt = digest length); wrong length, unknown `alg`, missing fields → 400 `BadParameter`; disabled → 403 `KeyDisabled`; before `nbf` / from `exp` → 403 (`KeyNotYetValid` / `KeyExpired`); unknown → 404 `KeyNotFound` | modelled; not modelled: EC signing (`ES*` on an EC key → 400 naming it), `verify`/`encrypt`/`wrapKey` |
//! | `GET /_emulator/state` | none | the fixture's shape with absolute RFC 3339 times and every value (a test double: values included) | test double |
//! | `GET /_emulator/requests`, `DELETE /_emulator/requests` | none | `{total, by_route: {"GET /v1.0/applications": n, "PUT /secrets/{name}": n, …}, by_vault}` / reset (counts and log) | test double |
//! | `GET /_emulator/requests/log` | none | every non-admin request in arrival order (the first 100,000 since the last reset; `truncated: true` beyond): `{"log": [{"index": 1, "method": "POST", "route": "POST /v1.0/applications(appId='{appId}')/addPassword", "vault": null, "status": 200, "at_us": 0, "us": 20412}, …], "truncated": false}`; `route` is the `by_route` label, `vault` the vault's name for vault listeners, `status` what was answered (also when a fault answered), `"dropped"`, `"hung"`, or `null` while in flight or when the client went away first; `at_us` the arrival in µs after the first logged request, `us` the µs to the outcome including emulated latency (`null` while in flight) | test double |
//! | `POST /_emulator/faults`, `GET /_emulator/faults`, `DELETE /_emulator/faults` | none | a rule (below); the list shows each rule as posted plus `fired`, `remaining`, `after`, `hang`, `skip`, `skip_remaining` / remove all | test double |
//! | `POST /_emulator/latency` | none | `{"ms": N}` added to every non-admin request | test double |
//! | `POST /_emulator/propagation` | none | `{"ms": N}`: delay before a new password can log in | test double |
//! | `POST /_emulator/oidc/token`, `GET /_emulator/oidc/jwks` | none | `{issuer, subject, audience? (default api://AzureADTokenExchange), lifetime_secs? (600)}` or `{issuer, claims}` → `{token, kid}`: a JWT signed (RS256) by the issuer's key, as the IdP (GitHub's token service, …) would hand out; the issuers' JWKS by issuer. Same keys as [`Emulator::oidc_signer`] | test double |
//! | `POST /_emulator/age` | none | `{"days": N}` or `{"seconds": N}`: every stored time moves N into the past, as if that much time had passed (certificates excepted) | test double |
//! | `GET /_emulator/fidelity`, `POST /_emulator/fidelity` | none | the fidelity settings (below) / replace the given fields (others kept; the throttling windows start afresh) and answer the result; 400 naming a refused value | test double |
//! | vault, every route: `api-version` | — | accepted only from the fidelity's `api_versions` (default: the stable Key Vault data-plane versions `2016-10-01`, `7.0`–`7.6`, `7.6-preview.2`, `2025-07-01`; the official Rust crates send `2025-07-01`, `azure-keyvault-secrets` 4.10 sends `7.6`); others → 400 `BadParameter` "The specified version (…) is not recognized. Consider using the latest supported version (…)." | modelled |
//! | every answer | — | Graph `request-id` (the one in error bodies) and `client-request-id` (the client's, else the request id); Entra, Key Vault and ARM `x-ms-request-id`; `x-ms-client-request-id` echoed | modelled |
//! | Graph `$count`, `$search`, `$orderby` | — | `$search` and `$count=true` (and `GET /v1.0/applications/$count`, text/plain) need `ConsistencyLevel: eventual` (else 400 `Request_UnsupportedQuery` / `Request_BadRequest` "$count is not currently supported."); `$search="displayName:word"` clauses joined by `AND` or `OR`, tokenized prefix match; without the header `$orderby` takes `displayName` only and not with `$filter` ("Sorting not supported for current query."), with it also `createdDateTime` and `appId` | simplified: `$search` on `displayName`/`appId` only |
//! | throttling (fidelity `throttling`, off by default) | — | sliding windows: per vault 300 `PUT /secrets/{name}` and 4,000 other requests per 10 s; Graph per app+tenant 3,500 resource units per 10 s (`GET /applications` 2, other requests 1, `$select` and `$top` < 20 one less, at least 1) and 3,000 writes per 150 s; writes (`PATCH`, `addPassword`, `removePassword`, `addKey`, `removeKey`) to an application whose `signInAudience` accepts personal accounts (`AzureADandPersonalMicrosoftAccount`, `PersonalMicrosoftAccount`) 60 per minute per app+tenant; per tenant 18,000 writes per 5 min across all callers (`x-ms-throttle-scope: Tenant/ReadWrite/{tenant}`); per vault 4,000 key transactions (`/keys…`, `sign`) per 10 s, apart from secrets; over budget → 429 with `Retry-After` (Key Vault `Throttled`, Graph `TooManyRequests` + `x-ms-throttle-scope` `Tenant_Application/{Read\|ReadWrite}/{appId}/{tenant}`); refused requests count in no window; budgets in `limits` | modelled: those budgets; simplified: key transactions cost the same for every key size (Azure: RSA-2048 software keys); not modelled: subscription-wide Key Vault budgets, Graph's per-app budgets across tenants (150,000 RU / 20 s, 35,000 writes / 5 min — one tenant never reaches them before its app+tenant budget), `x-ms-resource-unit` headers |
//!
//! ### Fidelity
//!
//! Where Azure is nondeterministic or untidy the emulator's choice is explicit, seeded and
//! configurable: fixture `fidelity` (every field optional), `POST /_emulator/fidelity`,
//! [`Emulator::set_fidelity`], or the environment variable `ROTOR_EMULATOR_FIDELITY` (a JSON
//! object applied at every start, e.g. `{"graph_read_delay_ms": 0}` to tell a consistency
//! assumption from another failure). Defaults are *unlike* the naive assumption, but short:
//!
//! | field | default | meaning |
//! |---|---|---|
//! | `seed` | 8 | seed of every seeded choice (same seed, same requests → same answers) |
//! | `version_order` | `scrambled` | `GET /secrets/{name}/versions`: `scrambled` (seeded; with ≥ 2 versions the newest is never last and the oldest never first), `by_id` (as real vaults were observed to list), `creation` |
//! | `empty_page_probability` | 0.3 | a Key Vault list page is first answered `{"value": [], "nextLink": …}` (drawn per list, offset and seed; at most once per page), and after the last items the same chance of one more, empty, final page |
//! | `delete_delay_ms` | 30 | a deleted secret is not yet among deleted secrets; write, recover and purge → 409 `Conflict` / `ObjectIsBeingDeleted` |
//! | `recover_delay_ms` | 30 | a recovered secret is still 404 |
//! | `purge_delay_ms` | 30 | writing a purged name → 409 `ObjectIsBeingDeleted` |
//! | `graph_read_delay_ms` | 30 | a password added by `addPassword`, and a key credential added by `addKey` or new in a `PATCH`, is missing from Graph reads (eventual consistency; a PATCH that leaves out an entry it could not see removes it, as on Graph) |
//! | `certificate_delay_ms` | 30 | a created certificate stays `inProgress` (with its `csr`) before it completes |
//! | `api_versions` | see above | Key Vault api-versions accepted |
//! | `throttling`, `limits` | `false`, Azure's | the throttling model and its budgets (`vault_create_per_10s` 300, `vault_other_per_10s` 4,000, `vault_key_other_per_10s` 4,000, `graph_ru_per_10s` 3,500, `graph_writes_per_150s` 3,000, `graph_personal_app_writes_per_60s` 60, `graph_tenant_writes_per_300s` 18,000) |
//!
//! Faults and latency never apply to the admin API; requests answered by a fault are still
//! counted and logged.
//!
//! ### Fault rules
//!
//! A rule matches a request by `method` (absent or `*`: any), `path` (regex on the path, not the
//! query; absent: any) and `vault` (only that vault's listener). Rules are tried in the order
//! they were added; the first one that fires decides. A refused rule answers 400 naming the field.
//!
//! | field | meaning |
//! |---|---|
//! | `status`, `retry_after` | answer this status with an error body (`InjectedFault`, `TooManyRequests` for 429) and `Retry-After` |
//! | `latency_ms` | wait first; alone: a slow request that is then handled normally; with `drop`: held, then dropped — a timeout as the client sees it |
//! | `drop: true` | close the connection without an answer (HTTP/2: reset the stream) |
//! | `hang: true` | never answer: hold the request until the client gives up or the emulator stops (not with `status` or `drop`) |
//! | `after: true` | *applied, then failed*: handle the request normally — its change is applied to the store — and only then replace the answer by `status`, `drop` or `hang` (after `latency_ms`). Without it a fault answers **instead** of the handler: nothing is applied |
//! | `skip: N` | let the first N matching requests through untouched (other rules may still fire on them) and fire from the (N+1)-th on: "the k-th matching request" is `skip: k-1, count: 1` |
//! | `count: N` | fire N times, then the rule is removed; absent: forever |
//! | `probability` | each matching request (after the skips) fires with this probability |
//!
//! ## Identity
//!
//! - **Tokens** are opaque to clients (JWT-shaped but unsigned, `alg: none`) and are looked up in
//!   a table: each names the principal or application it was issued to, its audience and its
//!   expiry (3600 s). Graph accepts Graph (or main-URL) tokens, ARM accepts ARM (or main-URL)
//!   tokens, vaults accept Key Vault (or vault-URL) tokens; anything else is a 401.
//! - **Client secret**: a principal's `client_secret`, or one of an application's password
//!   credentials (so a rotated secret can be proven by logging in with it). Refused: unknown
//!   client (AADSTS700016), wrong/removed secret (AADSTS7000215), a secret still inside the
//!   propagation delay or before its start (AADSTS7000215, as Entra answers), an expired secret
//!   (AADSTS7000222), an app with `service_principal: false` (AADSTS7000229). Tokens issued to an
//!   application carry no roles: enough to prove the secret works, nothing more.
//! - **Client assertion** (`client_assertion_type` jwt-bearer). Validated: the JWT's shape,
//!   `exp` (not past, AADSTS700024). For a *principal* (federated credential), one of its
//!   `federated_credentials` must match `iss` exactly, `sub` exactly (or by a trailing `*`
//!   prefix) and have its `audience` (default `api://AzureADTokenExchange`) among `aud`
//!   (otherwise AADSTS70021); then, as Entra checks against the issuer's JWKS, the token must
//!   be RS256 (otherwise AADSTS5002738), carry an `exp` (AADSTS50027) and an `nbf` not more than
//!   5 minutes ahead (AADSTS700024), and be **signed by the issuer's key** its header `kid` names
//!   (otherwise AADSTS50013, 401). The emulator plays every issuer: each issuer URL gets an
//!   RSA-2048 key on first use, and tests mint its tokens with [`Emulator::oidc_signer`]
//!   ([`OidcSigner::mint`], or `mint_claims` for odd claims) or `POST /_emulator/oidc/token` —
//!   an unsigned or foreign-signed token with the right claims is refused. For an *application* (certificate credential), `iss` and `sub` must
//!   both be the app id and the header's `x5t` (or `x5t#S256`; standard or URL-safe base64)
//!   must name one of the app's key credentials that is currently valid (otherwise
//!   AADSTS700027); `exp` is required (AADSTS50027), `aud` must be the token endpoint
//!   (`{authority_host}/{tenant}/oauth2/v2.0/token`, or the login.microsoftonline.com one;
//!   otherwise AADSTS700023), and the **signature is verified** against that credential's
//!   certificate: RS256 or PS256 with an RSA key (otherwise AADSTS700027; a credential known
//!   only by thumbprint cannot sign in).
//! - **Graph permissions** (principal `graph_roles`): reads need `Application.Read.All` or
//!   `Application.ReadWrite.All` (`Directory.*` equivalents accepted); writes need
//!   `Application.ReadWrite.All`, or `Application.ReadWrite.OwnedBy` for applications whose
//!   fixture `owners` list contains the principal's client id (or object id). With only
//!   `OwnedBy`, lists show owned applications only. Otherwise 403 `Authorization_RequestDenied`.
//! - **Key Vault roles** (principal `vault_roles`, by vault name or `*`): `Key Vault
//!   Administrator` (all), `Key Vault Secrets Officer` (all secret operations), `Key Vault Secrets
//!   User` (get + list), `Key Vault Reader` (list/metadata, certificates and keys read), `Key Vault
//!   Certificates Officer` (certificates only: no key or secret access, as Azure's
//!   `certificates/*`), `Key Vault Certificate User` (read certificates, their secrets and keys),
//!   `Key Vault Crypto User` / `Key Vault Crypto Officer` (read keys, sign), `Key Vault Crypto
//!   Service Encryption User` (read keys).
//!   Otherwise 403 `Forbidden` / `ForbiddenByRbac` naming the action, as Key Vault does.
//! - **Key Vault challenge**: requests without a bearer token get 401 with
//!   `WWW-Authenticate: Bearer authorization="{authority_host}/{tenant}", resource="https://vault.azure.net"`.
//!   The resource is Azure's, so SDK clients need `verify_challenge_resource: false`
//!   (`ROTOR_KEYVAULT_VERIFY_CHALLENGE=false`) because the vault host is `127.0.0.1`.
//!
//! ## Fixture
//!
//! The format of PRODUCT.md ("The emulator"), parsed by [`Fixture::from_json`] (errors name the
//! JSON path of the bad field; unknown fields are refused). Every field but names is optional:
//! ids, secrets (Entra's 40-character `xxx8Q~…` form) and dates are generated when absent, and
//! any time may be relative to the start (`"+25d"`, `"-340d"`, `"+2h"`, `"-30m"`, `"now"`).
//! Extras beyond PRODUCT.md:
//!
//! | where | field | meaning |
//! |---|---|---|
//! | top level | `propagation_delay_ms` | delay before a new password can log in (default 0) |
//! | top level | `max_password_lifetime_days` | app management policy for `addPassword` |
//! | top level | `fidelity` | the seeded choices of "Fidelity" above (ordering, empty pages, delays, api-versions, throttling) |
//! | principal | `object_id` | service principal object id |
//! | principal | `vault_roles` values | a role name or a list of role names |
//! | principal | `subscription_roles` | subscription id/name (or `*`) → role; absent: every subscription readable |
//! | principal | `federated_credentials` | `[{issuer, subject, audience}]` accepted as client assertions |
//! | principal | `certificates` | base64 DER certificates whose RSA keys may sign client assertions for the principal (`x5t`/`x5t#S256` naming one, `iss` = `sub` = client id, `aud` the token endpoint, `exp`, signature verified) |
//! | application | `service_principal` | default `true`; `false`: its passwords cannot log in (AADSTS7000229) |
//! | application | `owners` | principal client ids (or object ids) for `Application.ReadWrite.OwnedBy` |
//! | application | `created` | `createdDateTime`; default start of its credentials |
//! | application | `key_credentials` | `[{key_id, display_name, type, usage, thumbprint (hex), key (base64 DER), start, end}]` |
//! | application | `token_encryption_key_id` | `tokenEncryptionKeyId` (Graph: `$select`able, PATCHable) |
//! | vault | `location` | default `westeurope`; `resource_group` defaults to `rg-{name}` |
//! | vault secret | `versions` | the whole history, oldest first (`version`, `value`, `content_type`, `tags`, `expires`, `not_before`, `enabled`, `created`) instead of the single-version fields |
//! | vault secret | `not_before`, `created`, `deleted` | `nbf`; creation time; soft-deleted (recoverable) |
//!
//! [`Fixture::sample`] is `examples/fixtures/sample-tenant.json` (see the README next to it).
//!
//! ## TLS
//!
//! A CA is generated at every start and signs one server certificate for `localhost`,
//! `127.0.0.1` and `::1`; all listeners serve HTTP/1.1 (keep-alive) and HTTP/2 (ALPN). The CA's PEM
//! is [`Emulator::ca_pem`] and is written to [`Endpoints::ca_file`].
//!
//! ## Known simplifications
//!
//! Created certificates are self-signed only and their backing secret holds PEM
//! (`application/x-pem-file`); the keys API covers only certificates' keys (read and RSA
//! `sign`). Federated issuers' keys live in the emulator (no JWKS is fetched). Deleted
//! secrets are never purged automatically.

#![forbid(unsafe_code)]
// Handlers return `Result<_, Response>`: the error *is* the HTTP answer, built once and returned.
#![allow(clippy::result_large_err)]

mod admin;
mod arm;
mod entra;
pub mod fidelity;
pub mod fixture;
mod graph;
mod keyvault;
pub mod oidc;
mod server;
mod state;
pub mod throttle;
mod tls;
mod util;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use fixture::{Fixture, FixtureError, TimeSpec};
pub use oidc::OidcSigner;

/// Options for [`Emulator::start`].
#[derive(Debug, Clone, Default)]
pub struct EmulatorOptions {
    /// Delay before a password added with `addPassword` can log in. Zero: use the fixture's
    /// `propagation_delay_ms` (default 0).
    pub propagation_delay: Duration,
    /// Where to write the CA PEM. `None`: a temporary directory owned by the emulator (removed on
    /// shutdown).
    pub ca_file: Option<PathBuf>,
}

/// Where everything is; serialises to exactly the endpoints JSON line of PRODUCT.md.
#[derive(Clone, Serialize)]
pub struct Endpoints {
    pub tenant_id: String,
    /// `https://127.0.0.1:PORT` (clients append `/{tenant}/oauth2/v2.0/token`).
    pub authority_host: String,
    /// `https://127.0.0.1:PORT` (clients append `/v1.0/...`).
    pub graph_endpoint: String,
    /// `https://127.0.0.1:PORT`.
    pub arm_endpoint: String,
    /// Vault name → `https://127.0.0.1:PORT/`.
    pub vaults: BTreeMap<String, String>,
    /// The CA's PEM file.
    pub ca_file: PathBuf,
    /// `https://127.0.0.1:PORT/_emulator`.
    pub admin: String,
    /// What the CLI and the provider need to work against the emulator as the first principal.
    pub env: BTreeMap<String, String>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: BTreeMap<&str, &str> = self
            .env
            .iter()
            .map(|(k, v)| {
                let v = if k.ends_with("_SECRET") {
                    "[redacted]"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("Endpoints")
            .field("tenant_id", &self.tenant_id)
            .field("authority_host", &self.authority_host)
            .field("graph_endpoint", &self.graph_endpoint)
            .field("arm_endpoint", &self.arm_endpoint)
            .field("vaults", &self.vaults)
            .field("ca_file", &self.ca_file)
            .field("admin", &self.admin)
            .field("env", &env)
            .finish()
    }
}

/// A running emulator. Dropping it stops the listeners; [`Emulator::shutdown`] does so explicitly.
pub struct Emulator {
    ctx: Arc<server::Ctx>,
    endpoints: Endpoints,
    ca_pem: String,
    tasks: Vec<JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("authority_host", &self.endpoints.authority_host)
            .field("vaults", &self.endpoints.vaults)
            .finish_non_exhaustive()
    }
}

async fn bind() -> anyhow::Result<(TcpListener, u16)> {
    let l = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("binding a listener on 127.0.0.1")?;
    let port = l.local_addr().context("reading the bound port")?.port();
    Ok((l, port))
}

impl Emulator {
    /// Start serving `fixture` on 127.0.0.1 (ephemeral ports).
    pub async fn start(fixture: Fixture, opts: EmulatorOptions) -> anyhow::Result<Emulator> {
        fixture
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid fixture: {e}"))?;
        let tls = tls::generate().context("generating the emulator's certificates")?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config.clone());
        let (main_listener, main_port) = bind().await?;
        let main_url = format!("https://127.0.0.1:{main_port}");
        let mut vault_listeners = Vec::new();
        let mut vault_urls = Vec::new();
        for _ in &fixture.vaults {
            let (l, port) = bind().await?;
            vault_listeners.push(l);
            vault_urls.push(format!("https://127.0.0.1:{port}/"));
        }
        let delay = if opts.propagation_delay.is_zero() {
            fixture.propagation_delay()
        } else {
            opts.propagation_delay
        };
        let mut store = state::Store::from_fixture(&fixture, &vault_urls, delay)?;
        if let Ok(patch) = std::env::var(fidelity::FIDELITY_ENV) {
            let patch: serde_json::Value = serde_json::from_str(&patch)
                .with_context(|| format!("{} is not JSON", fidelity::FIDELITY_ENV))?;
            store.fidelity = store
                .fidelity
                .merged(patch)
                .map_err(|e| anyhow::anyhow!("{}: {e}", fidelity::FIDELITY_ENV))?;
        }

        let (ca_file, temp) = match &opts.ca_file {
            Some(p) => (p.clone(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("rotor-emulator-")
                    .tempdir()
                    .context("creating a temporary directory for the CA file")?;
                (dir.path().join("ca.pem"), Some(dir))
            }
        };
        std::fs::write(&ca_file, &tls.ca_pem)
            .with_context(|| format!("writing the CA to `{}`", ca_file.display()))?;

        let mut env = BTreeMap::new();
        env.insert("AZURE_TENANT_ID".to_string(), store.tenant_id.clone());
        env.insert("ARM_TENANT_ID".to_string(), store.tenant_id.clone());
        if let Some(p) = store.principals.first() {
            env.insert("AZURE_CLIENT_ID".into(), p.client_id.clone());
            env.insert("AZURE_CLIENT_SECRET".into(), p.client_secret.clone());
            env.insert("ARM_CLIENT_ID".into(), p.client_id.clone());
            env.insert("ARM_CLIENT_SECRET".into(), p.client_secret.clone());
        }
        if let Some(s) = store.subscriptions.first() {
            env.insert("ARM_SUBSCRIPTION_ID".into(), s.id.clone());
            env.insert("AZURE_SUBSCRIPTION_ID".into(), s.id.clone());
        }
        env.insert("AZURE_AUTHORITY_HOST".into(), main_url.clone());
        env.insert("ROTOR_GRAPH_ENDPOINT".into(), main_url.clone());
        env.insert("ROTOR_ARM_ENDPOINT".into(), main_url.clone());
        env.insert("ROTOR_KEYVAULT_VERIFY_CHALLENGE".into(), "false".into());
        env.insert(
            "SSL_CERT_FILE".into(),
            ca_file.to_string_lossy().into_owned(),
        );
        let vault_names: Vec<String> = store.vaults.iter().map(|v| v.name.clone()).collect();
        let endpoints = Endpoints {
            tenant_id: store.tenant_id.clone(),
            authority_host: main_url.clone(),
            graph_endpoint: main_url.clone(),
            arm_endpoint: main_url.clone(),
            vaults: vault_names
                .iter()
                .cloned()
                .zip(vault_urls.iter().cloned())
                .collect(),
            ca_file,
            admin: format!("{main_url}/_emulator"),
            env,
        };
        let ctx = Arc::new(server::Ctx {
            store: RwLock::new(store),
            tokens: RwLock::new(Default::default()),
            counts: Mutex::new(Default::default()),
            faults: Mutex::new(Vec::new()),
            throttle: Mutex::new(Default::default()),
            latency_ms: AtomicU64::new(0),
            main_url,
            vault_urls,
            vault_names,
            issuers: Mutex::new(Default::default()),
        });
        let mut tasks = vec![tokio::spawn(server::serve(
            main_listener,
            acceptor.clone(),
            ctx.clone(),
            server::Kind::Main,
        ))];
        for (i, l) in vault_listeners.into_iter().enumerate() {
            tasks.push(tokio::spawn(server::serve(
                l,
                acceptor.clone(),
                ctx.clone(),
                server::Kind::Vault(i),
            )));
        }
        tracing::info!(authority_host = %endpoints.authority_host, vaults = endpoints.vaults.len(), "rotor-emulator listening");
        Ok(Emulator {
            ctx,
            endpoints,
            ca_pem: tls.ca_pem,
            tasks,
            _temp: temp,
        })
    }

    /// Where everything is.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The endpoints JSON line (no trailing newline).
    pub fn endpoints_line(&self) -> String {
        serde_json::to_string(&self.endpoints).unwrap_or_default()
    }

    /// PEM of the emulator's CA (also written to `endpoints().ca_file`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Same JSON as `GET {admin}/state` (includes secret values: a test double).
    pub fn state(&self) -> serde_json::Value {
        self.ctx.store.read().to_json()
    }

    /// Same JSON as `GET {admin}/requests`.
    pub fn request_counts(&self) -> serde_json::Value {
        admin::request_counts(&self.ctx)
    }

    /// Same JSON as `GET {admin}/requests/log`: every non-admin request since the last reset, in
    /// arrival order, with what was answered.
    pub fn request_log(&self) -> serde_json::Value {
        admin::request_log(&self.ctx)
    }

    /// Reset the request counts and the log, as `DELETE {admin}/requests` does.
    pub fn clear_requests(&self) {
        self.ctx.reset_counts();
    }

    /// Install a fault, as `POST {admin}/faults` does (same JSON body); a refused spec's error
    /// says why, as the endpoint's 400 message does.
    pub fn add_fault(&self, spec: serde_json::Value) -> anyhow::Result<()> {
        let body = serde_json::to_vec(&spec)?;
        let rule = admin::parse_fault(&body).map_err(anyhow::Error::msg)?;
        self.ctx.faults.lock().push(rule);
        Ok(())
    }

    /// Remove every fault.
    pub fn clear_faults(&self) {
        self.ctx.faults.lock().clear();
    }

    /// Latency added to every non-admin request.
    pub fn set_latency(&self, latency: Duration) {
        self.ctx.latency_ms.store(
            latency.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Age the tenant as if `by` had passed: every stored time (credential start/end, secret
    /// created/updated/`nbf`/`exp`, deletion dates) moves into the past. Same as
    /// `POST {admin}/age`. Lets tests reach "rotation due" or "grace period over" without a clock.
    ///
    /// # Panics
    ///
    /// When `by` would move a stored time out of the representable range (thousands of years).
    pub fn age(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        if let Err(e) = self.ctx.store.write().age(secs) {
            panic!("Emulator::age({by:?}): {e}");
        }
    }

    /// The fidelity settings (as `GET {admin}/fidelity`).
    pub fn fidelity(&self) -> fidelity::Fidelity {
        self.ctx.store.read().fidelity.clone()
    }

    /// Replace the given fidelity fields, as `POST {admin}/fidelity` does (same JSON object);
    /// a refused value's error says why.
    pub fn set_fidelity(&self, patch: serde_json::Value) -> anyhow::Result<()> {
        let body = serde_json::to_vec(&patch)?;
        admin::set_fidelity(&self.ctx, &body).map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// The signing key of the OIDC issuer `issuer` (created on first use), to mint the
    /// federated tokens the token endpoint accepts for credentials naming that issuer — what
    /// GitHub's (or any IdP's) token service would hand out. Same key as
    /// `POST {admin}/oidc/token`.
    ///
    /// # Panics
    ///
    /// When no RSA key can be generated (the platform's crypto is broken).
    pub fn oidc_signer(&self, issuer: &str) -> OidcSigner {
        match self.ctx.issuers.lock().signer(issuer) {
            Ok(s) => s,
            Err(e) => panic!("Emulator::oidc_signer({issuer}): {e}"),
        }
    }

    /// Change the delay before new passwords can log in.
    pub fn set_propagation_delay(&self, delay: Duration) {
        self.ctx.store.write().propagation_delay = delay;
    }

    /// Stop every listener and connection.
    pub async fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
