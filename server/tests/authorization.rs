//! The authorization matrix: every route, called anonymously and as each kind of
//! account, with the outcome the policy names (docs/server-api.md): passed on to the
//! handler, `401 unauthorized`, or `403 forbidden`. Bodies are real (a lab's batch,
//! record, grant and re-keying statement; a doctor's request), so a refusal is the
//! server's gate and not a parse error, and the cloud never sees a refused write.

mod common;
use common::*;

use medvault::remote::Role;
use medvault::{AccessRequest, CloudService, Identity, PatientId, Rekey, Scope};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Gate {
    /// Reaches the handler: any status but 401/403 from the gate, never a 5xx.
    Pass,
    /// `401 unauthorized`.
    Unauthorized,
    /// `403 forbidden`.
    Forbidden,
}
use Gate::*;

/// The callers, in the matrix's column order.
const CALLERS: [&str; 6] = [
    "anonymous",
    "city-lab",
    "st-mary",
    "dr-grey",
    "nurse",
    "admin",
];

struct Row {
    method: &'static str,
    path: String,
    /// The route template the path matches (checked against the router).
    template: &'static str,
    body: Option<(&'static str, Vec<u8>)>,
    expected: [Gate; 6],
}

fn row(
    method: &'static str,
    template: &'static str,
    path: impl Into<String>,
    body: Option<(&'static str, Vec<u8>)>,
    expected: [Gate; 6],
) -> Row {
    Row {
        method,
        path: path.into(),
        template,
        body,
        expected,
    }
}

fn nurse_identity() -> Identity {
    // Any identity other than the doctor's: the lab's keys serve as the nurse's.
    lab_identity()
}

#[test]
fn every_route_is_refused_or_served_as_the_policy_says_for_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (lab_keys, doctor_keys, nurse_keys) = (lab_identity(), doctor_identity(), nurse_identity());
    let fingerprint = |keys: &Identity| hex(&keys.public().encryption.fingerprint());
    server.register("st-mary", Role::Provider, None);
    server.register("dr-grey", Role::Requester, Some(fingerprint(&doctor_keys)));
    server.register("nurse", Role::Requester, Some(fingerprint(&nurse_keys)));

    // The lab's data, the doctor's request and the lab's grant for it.
    let (lab_cloud, mut lab) = server.provider("city-lab", 5);
    let lab_id = lab.id().clone();
    let alice = PatientId::new("+15550100").unwrap();
    let stored = lab
        .add_record(&alice, b"HbA1c 7.9 %", &["diabetes"])
        .unwrap();
    lab_cloud
        .ingest_bytes(&lab.finish().unwrap().to_bytes())
        .unwrap();
    lab_cloud.put_record_from(&mut &stored.bytes[..]).unwrap();
    let doctor_cloud = server.connect("dr-grey", PASSWORD).unwrap();
    let admin = server.connect("admin", ADMIN_PASSWORD).unwrap();
    let (grant, _) = approved_grant(&doctor_cloud, &admin, &lab_cloud, &lab, &alice, 86_400);
    lab_cloud.post_grant(grant.to_bytes()).unwrap();

    // Bodies the lab would send next.
    let next = lab
        .add_record(&alice, b"glucose 9.1", &["diabetes"])
        .unwrap();
    let next_batched = lab
        .add_record(&alice, b"glucose 8.7", &["diabetes"])
        .unwrap();
    let batch = lab.finish().unwrap().to_bytes().to_vec();
    let new_keys = doctor_keys.public();
    let rekey = Rekey::issue(&lab_id, &lab_keys.signing, &new_keys)
        .unwrap()
        .to_bytes();
    let (request2, _) = AccessRequest::create(
        &doctor_keys,
        "Dr. Grey",
        &lab_id,
        &lab_keys.public().encryption,
        Scope::Patient(alice),
        "second opinion",
        now(),
    )
    .unwrap();
    let keys_json =
        serde_json::to_vec(&medvault::remote::ProviderKeys::of(&lab_keys.public())).unwrap();
    let json = |text: &str| Some(("application/json", text.as_bytes().to_vec()));
    let binary = |bytes: Vec<u8>| Some(("application/octet-stream", bytes));

    let record = format!("/v1/records/city-lab/{}", stored.id);
    let doctor_mailbox = format!("/v1/grants/{}", fingerprint(&doctor_keys));
    let decision = format!("/v1/requests/{}/decision", hex(&grant.request_id()));
    //                        anonymous      city-lab   st-mary    dr-grey    nurse      admin
    let all = [Pass, Pass, Pass, Pass, Pass, Pass];
    let sessions = [Unauthorized, Pass, Pass, Pass, Pass, Pass];
    let lab_only = [
        Unauthorized,
        Pass,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
    ];
    let requesters = [Unauthorized, Forbidden, Forbidden, Pass, Pass, Forbidden];
    let doctor_only = [
        Unauthorized,
        Forbidden,
        Forbidden,
        Pass,
        Forbidden,
        Forbidden,
    ];
    let admin_only = [
        Unauthorized,
        Forbidden,
        Forbidden,
        Forbidden,
        Forbidden,
        Pass,
    ];
    let lab_and_granted = [Unauthorized, Pass, Forbidden, Pass, Forbidden, Forbidden];
    let rows = vec![
        row("get", "/health", "/health", None, all),
        row("get", "/openapi.json", "/openapi.json", None, all),
        row("get", "/metrics", "/metrics", None, all),
        row(
            "post",
            "/v1/accounts",
            "/v1/accounts",
            json(r#"{"account":"x"}"#),
            all,
        ),
        row(
            "post",
            "/v1/login",
            "/v1/login",
            json(r#"{"account":"x"}"#),
            all,
        ),
        row(
            "post",
            "/v1/providers/{id}/keys",
            "/v1/providers/city-lab/keys",
            Some(("application/json", keys_json)),
            lab_only,
        ),
        row(
            "get",
            "/v1/providers/{id}/keys",
            "/v1/providers/city-lab/keys",
            None,
            sessions,
        ),
        row(
            "get",
            "/v1/providers/{id}/approved",
            "/v1/providers/city-lab/approved",
            None,
            lab_only,
        ),
        row("post", "/v1/rekey", "/v1/rekey", binary(rekey), lab_only),
        row(
            "post",
            "/v1/batches",
            "/v1/batches",
            binary(batch),
            lab_only,
        ),
        row(
            "post",
            "/v1/records",
            "/v1/records",
            binary(next.bytes.to_vec()),
            lab_only,
        ),
        row(
            "post",
            "/v1/records/batch",
            "/v1/records/batch",
            binary(medvault::record_batch_bytes(&[&next_batched.bytes]).unwrap()),
            lab_only,
        ),
        row(
            "get",
            "/v1/records/{provider}/{record}",
            record,
            None,
            lab_and_granted,
        ),
        row("get", "/v1/manifest", "/v1/manifest", None, sessions),
        row(
            "post",
            "/v1/search",
            "/v1/search",
            binary(b"MVQY".to_vec()),
            requesters,
        ),
        row(
            "post",
            "/v1/requests",
            "/v1/requests",
            binary(request2.to_bytes().to_vec()),
            doctor_only,
        ),
        row(
            "post",
            "/v1/requests/{id}/decision",
            decision,
            json(r#"{"approve":false}"#),
            admin_only,
        ),
        row(
            "post",
            "/v1/grants",
            "/v1/grants",
            binary(grant.to_bytes().to_vec()),
            lab_only,
        ),
        row(
            "get",
            "/v1/grants/{fingerprint}",
            doctor_mailbox,
            None,
            doctor_only,
        ),
        row("get", "/v1/admin/view", "/v1/admin/view", None, admin_only),
        row(
            "post",
            "/v1/admin/merge",
            "/v1/admin/merge",
            None,
            admin_only,
        ),
        // Last: it ends the session it is called with (a fresh one per caller).
        row("post", "/v1/logout", "/v1/logout", json("{}"), sessions),
    ];

    // Every route of the router has its row.
    let covered: std::collections::BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.to_owned(), r.template.to_owned()))
        .collect();
    assert_eq!(covered, routes_in_source(), "rows and routes differ");

    let agent = server.raw_agent();
    let password = |caller: &str| {
        if caller == "admin" {
            ADMIN_PASSWORD
        } else {
            PASSWORD
        }
    };
    let mut failures = Vec::new();
    for r in &rows {
        for (column, caller) in CALLERS.iter().enumerate() {
            // A fresh session per call, so logout ends only its own.
            let token = (*caller != "anonymous").then(|| {
                let mut answer = agent
                    .post(format!("{}/v1/login", server.url))
                    .header("content-type", "application/json")
                    .send(
                        serde_json::to_vec(&serde_json::json!({
                            "account": caller, "password": password(caller)
                        }))
                        .unwrap(),
                    )
                    .unwrap();
                let body: serde_json::Value =
                    serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
                body["token"]
                    .as_str()
                    .unwrap_or_else(|| panic!("login as {caller}: {body}"))
                    .to_owned()
            });
            let url = format!("{}{}", server.url, r.path);
            let response = match (r.method, &r.body, &token) {
                ("get", _, None) => agent.get(&url).call(),
                ("get", _, Some(t)) => agent
                    .get(&url)
                    .header("authorization", format!("Bearer {t}"))
                    .call(),
                (_, body, token) => {
                    let mut request = agent.post(&url);
                    if let Some(t) = token {
                        request = request.header("authorization", format!("Bearer {t}"));
                    }
                    match body {
                        Some((kind, bytes)) => {
                            request.header("content-type", *kind).send(&bytes[..])
                        }
                        None => request.send_empty(),
                    }
                }
            };
            let mut response = response.unwrap();
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            let code = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned));
            let got = match (status, code.as_deref()) {
                (401, Some("unauthorized")) => Unauthorized,
                (403, Some("forbidden")) => Forbidden,
                (500.., _) => {
                    failures.push(format!(
                        "{} {} as {caller}: {status} {text}",
                        r.method, r.path
                    ));
                    continue;
                }
                _ => Pass,
            };
            if got != r.expected[column] {
                failures.push(format!(
                    "{} {} as {caller}: expected {:?}, got {got:?} ({status} {text})",
                    r.method, r.template, r.expected[column]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Refused writes never reached the cloud: st-mary's account could not put the lab's
    // batch, record, grant or statement, and the lab's keys are still the lab's.
    let pinned = doctor_cloud.provider_keys(&lab_id).unwrap().unwrap();
    assert!(
        pinned.verifying == lab_keys.public().verifying || pinned.verifying == new_keys.verifying,
        "the directory changed hands"
    );
}
