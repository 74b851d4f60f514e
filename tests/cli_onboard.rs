//! `dropfolder onboard NAME` and `check NAME` as an operator onboarding a customer runs them:
//! the documents printed are the ones `deploy/iam/` grants, and `check` then assumes the
//! customer's role and lists their folder (LocalStack), or says what the customer must change.

mod common;
#[path = "common/localstack.rs"]
mod localstack;
#[path = "common/sts_stub.rs"]
mod sts_stub;
#[path = "common/workdir.rs"]
mod workdir;

use std::collections::BTreeSet;

use serde_json::Value;
use workdir::Workdir;

const PRINCIPAL: &str = "arn:aws:iam::111122223333:role/dropfolder";

const IAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/iam");

fn config(bucket: &str, access: &str) -> String {
    format!(
        "[schemas.users]\nid = \"string\"\n\n[[integrations]]\nname = \"acme\"\nentity = \"user\"\nschema = \"users\"\nbucket = \"{bucket}\"\n{access}\n"
    )
}

/// The JSON documents of the output, in order: blocks from an indented `{` to its `}`.
fn documents(stdout: &str) -> Vec<Value> {
    let mut found = Vec::new();
    let mut block: Option<String> = None;
    for line in stdout.lines() {
        match (&mut block, line) {
            (None, "    {") => block = Some("{\n".to_string()),
            (Some(text), "    }") => {
                text.push('}');
                found.push(serde_json::from_str(text).expect("a JSON document"));
                block = None;
            }
            (Some(text), line) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    found
}

/// Every `s3:Action` a document grants.
fn actions(policy: &Value) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for statement in policy["Statement"].as_array().expect("statements") {
        match &statement["Action"] {
            Value::String(one) => {
                all.insert(one.clone());
            }
            Value::Array(many) => {
                all.extend(many.iter().filter_map(|a| a.as_str().map(String::from)))
            }
            other => panic!("Action {other}"),
        }
    }
    all
}

/// The `s3:` actions named in the CloudFormation template (not `s3:prefix`, not ARNs).
fn template_actions(template: &str) -> BTreeSet<String> {
    template
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|word| {
            word.strip_prefix("s3:")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        })
        .map(String::from)
        .collect()
}

/// The template's parameters, and whether each has a default.
fn template_parameters(template: &str) -> Vec<(String, bool)> {
    let section = template
        .split_once("\nParameters:\n")
        .and_then(|(_, rest)| rest.split_once("\nConditions:"))
        .map(|(section, _)| section)
        .expect("a Parameters section");
    let mut parameters: Vec<(String, bool)> = Vec::new();
    for line in section.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
            && !name.starts_with('#')
        {
            parameters.push((name.to_string(), false));
        } else if line.trim_start().starts_with("Default:")
            && let Some(last) = parameters.last_mut()
        {
            last.1 = true;
        }
    }
    parameters
}

#[test]
fn onboard_prints_what_deploy_iam_grants_with_a_new_external_id() {
    let wd = Workdir::new();
    // Being onboarded: no role_arn yet, which `check` would refuse; onboard only reads it.
    wd.write("dropfolder.toml", config("acme-exports/px", ""));
    let run = wd.run(&["onboard", "acme", "--principal", PRINCIPAL]);
    assert_eq!(run.code, Some(0), "{run:?}");

    let external_id = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("    external_id = \"")?.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no external ID offered: {run:?}"))
        .to_string();
    let random = external_id.strip_prefix("df-").expect("df- prefix");
    assert!(
        random.len() >= 32 && random.bytes().all(|b| b.is_ascii_hexdigit()),
        "at least 128 bits: {external_id}"
    );
    assert!(
        run.stdout.contains("Add it to integration 'acme'"),
        "{run:?}"
    );
    let again = wd.run(&["onboard", "acme", "--principal", PRINCIPAL]);
    assert!(!again.stdout.contains(&external_id), "a new one each time");

    let docs = documents(&run.stdout);
    assert_eq!(docs.len(), 2, "{run:?}");
    let read = |name: &str| std::fs::read_to_string(format!("{IAM}/{name}")).expect(name);
    let role_policy: Value = serde_json::from_str(
        &read("role-policy.json")
            .replace("EXAMPLE-BUCKET", "acme-exports")
            .replace("EXAMPLE-PREFIX", "px"),
    )
    .expect("role-policy.json");
    assert_eq!(
        docs[0], role_policy,
        "the permissions of deploy/iam/role-policy.json"
    );
    let trust_policy: Value = serde_json::from_str(
        &read("trust-policy.json")
            .replace("arn:aws:iam::111122223333:role/dropfolder", PRINCIPAL)
            .replace("EXAMPLE-EXTERNAL-ID", &external_id),
    )
    .expect("trust-policy.json");
    assert_eq!(
        docs[1], trust_policy,
        "the trust of deploy/iam/trust-policy.json"
    );

    // Exactly SPEC.md's five actions, the same the template grants.
    let template = read("customer-role.yaml");
    let five: BTreeSet<String> = [
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(actions(&docs[0]), five);
    assert_eq!(template_actions(&template), five);

    // The template's parameters, every required one given, none it does not have.
    let parameters = template_parameters(&template);
    assert!(parameters.iter().any(|(name, _)| name == "ExternalId"));
    for (name, has_default) in &parameters {
        if !has_default {
            assert!(run.stdout.contains(&format!("{name}=")), "{name}: {run:?}");
        }
    }
    for given in [
        "BucketName=acme-exports".to_string(),
        "Prefix=px".to_string(),
        format!("DropfolderPrincipalArn={PRINCIPAL}"),
        format!("ExternalId={external_id}"),
    ] {
        let name = given.split('=').next().unwrap_or_default();
        assert!(parameters.iter().any(|(p, _)| p == name), "{name}");
        assert!(run.stdout.contains(&given), "{given}: {run:?}");
    }
}

#[test]
fn onboard_keeps_a_configured_external_id_and_refuses_a_wildcard_prefix() {
    let wd = Workdir::new();
    wd.write(
        "dropfolder.toml",
        config(
            "acme-exports",
            "role_arn = \"arn:aws:iam::444455556666:role/x\"\nexternal_id = \"SUB-123\"",
        ),
    );
    let run = wd.run(&["onboard", "acme", "--principal", PRINCIPAL]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!run.stdout.contains("external_id = "), "{run:?}");
    let docs = documents(&run.stdout);
    assert_eq!(
        docs[1]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "SUB-123"
    );
    // No prefix: the whole bucket, as the template does with an empty Prefix.
    assert_eq!(
        docs[0]["Statement"][2]["Resource"],
        "arn:aws:s3:::acme-exports/*"
    );

    wd.write("dropfolder.toml", config("acme-exports/p*", ""));
    let run = wd.run(&["onboard", "acme", "--principal", PRINCIPAL]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("wildcard"), "{run:?}");

    let run = wd.run(&["onboard", "nobody", "--principal", PRINCIPAL]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("no integration named 'nobody'"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_name_assumes_the_onboarded_role_and_lists_the_folder() {
    let Some(endpoint) = localstack::endpoint() else {
        return;
    };
    let ls = localstack::LocalStack::connect(endpoint.clone()).await;
    let bucket = ls.bucket().await;
    ls.put(&bucket, "px/current/dt=20210228/_SUCCESS", b"".to_vec())
        .await;
    let wd = Workdir::new();
    let endpoint_line = format!("endpoint = \"{endpoint}\"\nregion = \"us-east-1\"");
    wd.write(
        "dropfolder.toml",
        config(&format!("{bucket}/px"), &endpoint_line),
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    // The operator's principal from STS (LocalStack's root for the test keys).
    let run = wd.run_env(&["onboard", "acme"], &env);
    assert_eq!(run.code, Some(0), "{run:?}");
    let external_id = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("    external_id = \"")?.strip_suffix('"'))
        .unwrap_or_default()
        .to_string();
    let docs = documents(&run.stdout);
    assert_eq!(
        docs[1]["Statement"][0]["Principal"]["AWS"], "arn:aws:iam::000000000000:root",
        "{run:?}"
    );

    // The customer creates the role from the two documents, as printed.
    let iam = aws_sdk_iam::Client::new(&ls.config);
    let role_name = localstack::unique("onboarded");
    let role = iam
        .create_role()
        .role_name(&role_name)
        .assume_role_policy_document(docs[1].to_string())
        .send()
        .await
        .expect("create role from the printed trust policy");
    iam.put_role_policy()
        .role_name(&role_name)
        .policy_name("dropfolder-s3-import")
        .policy_document(docs[0].to_string())
        .send()
        .await
        .expect("put the printed permissions policy");
    let role_arn = role.role().map(|r| r.arn().to_string()).expect("role arn");

    let sts = sts_stub::StsStub::denying().await;
    let access =
        format!("{endpoint_line}\nrole_arn = \"{role_arn}\"\nexternal_id = \"{external_id}\"");
    let denied = config(
        &format!("{bucket}/other"),
        &format!("{access}\nsts_endpoint = \"{}\"", sts.url),
    )
    .replace("[schemas.users]\nid = \"string\"\n", "")
    .replace("acme", "beta");
    wd.write(
        "dropfolder.toml",
        config(&format!("{bucket}/px"), &access) + &denied,
    );
    let run = wd.run_env(&["check", "acme"], &env);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "acme: ok, s3://{bucket}/px reachable as arn:aws:sts::000000000000:assumed-role/{role_name}/dropfolder-acme: 1 folder(s) ready"
        )),
        "{run:?}"
    );
    assert!(
        !run.stdout.contains("beta"),
        "only the integration named: {run:?}"
    );

    // A role the customer has not set up right: said in their terms.
    let run = wd.run_env(&["check", "beta"], &env);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "beta: for the customer: we cannot assume your role {role_arn}: its trust policy must allow sts:AssumeRole to our principal with the external ID we gave you (`dropfolder onboard beta` prints it)"
        )),
        "{run:?}"
    );
}
