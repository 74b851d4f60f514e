//! `dropfolder onboard NAME`: what a customer must do before integration NAME can run, printed
//! for the operator to send: the role's permissions policy for their bucket (exactly the five
//! actions of SPEC.md, scoped to the prefix), the trust policy naming the operator's principal
//! with the integration's external ID, and the same as parameters of
//! `deploy/iam/customer-role.yaml`. An integration without an external ID gets one made from
//! the OS's randomness (160 bits), with where to put it. `dropfolder check NAME` then
//! verifies the customer did it.
//!
//! The config is parsed, not checked: an integration being onboarded has no `role_arn` yet,
//! which `check` rightly refuses.
//! Exit 0 printed, 1 the operator's principal could not be found, 2 bad config or usage.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use dropfolder::config::{Config, ConfigError, IntegrationConfig, SecretRef, StoreLocation};
use serde_json::{Value, json};

use super::UsageError;

/// Random bytes in a generated external ID: 160 bits, past guessing.
const EXTERNAL_ID_BYTES: usize = 20;

/// How long asking STS who the operator is may take.
const STS_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(
    config_path: &Path,
    name: &str,
    principal: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path).context("the config cannot be used")?;
    let Some(integration) = config.integrations.iter().find(|i| i.name == name) else {
        let known: Vec<&str> = config
            .integrations
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        return Err(ConfigError::UnknownIntegration {
            path: config_path.to_path_buf(),
            name: name.to_string(),
            known: known.join(", "),
        }
        .into());
    };
    let (bucket, prefix) = match integration.location(&config.base_dir) {
        Ok(StoreLocation::S3 { bucket, prefix }) => (bucket, prefix),
        Ok(StoreLocation::Local(_)) => {
            return Err(UsageError(format!(
                "integration '{name}' reads a local folder: there is no role for the customer to create"
            ))
            .into());
        }
        Err(e) => return Err(UsageError(format!("integration '{name}': bucket: {e}")).into()),
    };
    if let Some(c) = prefix.chars().find(|c| matches!(c, '*' | '?' | '$')) {
        return Err(UsageError(format!(
            "integration '{name}': the prefix '{prefix}' contains '{c}', which a policy reads as a wildcard or variable and would grant more than the one folder; choose a prefix without '*', '?' or '$'"
        ))
        .into());
    }
    let principal = match principal {
        Some(arn) => arn.to_string(),
        None => match operator_principal(integration).await {
            Ok(arn) => arn,
            Err(e) => {
                eprintln!(
                    "error: cannot find out the operator's principal ({e}); pass it with --principal ARN (the role or user dropfolder runs as)"
                );
                return Ok(ExitCode::from(1));
            }
        },
    };
    let partition = principal.split(':').nth(1).unwrap_or("aws");
    let external = external_id(integration, &config.base_dir)?;

    let root = if prefix.is_empty() {
        bucket.clone()
    } else {
        format!("{bucket}/{prefix}")
    };
    println!("Onboarding integration '{name}': s3://{root}/");
    println!();
    if let ExternalId::Generated { id, put } = &external {
        println!(
            "It has no external ID yet; this one was made from the OS's randomness ({} bits).",
            EXTERNAL_ID_BYTES * 8
        );
        println!("{put}:");
        println!();
        println!("    external_id = \"{id}\"");
        println!();
    }
    let external_id = external.id();
    if !valid_external_id(external_id) {
        println!(
            "warning: the external ID has characters or a length STS refuses (2 to 1224 of letters, digits and +=,.@:/-); the customer's role cannot be assumed with it"
        );
        println!();
    }
    println!(
        "1. The customer creates an IAM role in the AWS account that owns the bucket {bucket},"
    );
    println!("   with this permissions policy (nothing more is needed):");
    println!();
    println!(
        "{}",
        indent(&pretty(&permissions_policy(partition, &bucket, &prefix)))
    );
    println!();
    println!(
        "2. and this trust policy, which lets only dropfolder, presenting this external ID, assume it:"
    );
    println!();
    println!(
        "{}",
        indent(&pretty(&trust_policy(&principal, external_id)))
    );
    println!();
    println!("   Or, with the CloudFormation template deploy/iam/customer-role.yaml:");
    println!();
    println!("    aws cloudformation deploy --template-file customer-role.yaml \\");
    println!("      --stack-name dropfolder-import --capabilities CAPABILITY_NAMED_IAM \\");
    println!("      --parameter-overrides \\");
    let parameters = cloudformation_parameters(&bucket, &prefix, &principal, external_id);
    for (i, (key, value)) in parameters.iter().enumerate() {
        let end = if i + 1 < parameters.len() { " \\" } else { "" };
        println!("        {key}={}{end}", shell_quoted(value));
    }
    println!();
    println!(
        "3. The customer sends back the role's ARN (the stack's RoleArn output). Put it in integration '{name}':"
    );
    println!();
    println!("    role_arn = \"arn:{partition}:iam::CUSTOMER-ACCOUNT:role/ROLE-NAME\"");
    println!();
    println!(
        "   then `dropfolder check {name}` assumes the role and lists s3://{root}/current/, and says what is missing."
    );
    Ok(ExitCode::SUCCESS)
}

/// The integration's external ID, or a new one and where it goes.
enum ExternalId {
    Configured(String),
    Generated { id: String, put: String },
}

impl ExternalId {
    fn id(&self) -> &str {
        match self {
            ExternalId::Configured(id) | ExternalId::Generated { id, .. } => id,
        }
    }
}

fn external_id(integration: &IntegrationConfig, base: &Path) -> anyhow::Result<ExternalId> {
    if let Some(id) = &integration.external_id {
        return Ok(ExternalId::Configured(id.clone()));
    }
    let put = match &integration.external_id_env {
        Some(var) => match SecretRef::from_keys(Some(var), None, base).map(|r| r.read()) {
            Some(Ok(id)) => return Ok(ExternalId::Configured(id.expose().to_string())),
            _ => format!(
                "Set the environment variable {var} (named by external_id_env of integration '{}') to it, or write it in the integration instead of external_id_env",
                integration.name
            ),
        },
        None => format!(
            "Add it to integration '{}' in the config (it is an identifier, not a password)",
            integration.name
        ),
    };
    Ok(ExternalId::Generated {
        id: generate_external_id()?,
        put,
    })
}

/// `df-` and 160 random bits from the OS, in hex: within what STS and the template accept.
/// Without the OS's randomness there is no ID that is hard to guess: an error, not a weaker one.
fn generate_external_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; EXTERNAL_ID_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the OS gave no random bytes for an external ID: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("df-{hex}"))
}

/// STS's rule for an external ID: 2 to 1224 of `[\w+=,.@:/-]`.
fn valid_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c))
}

/// An IAM policy document, its keys in the order AWS's own examples and `deploy/iam/` write
/// them (a JSON object's keys would come out sorted, `Version` last).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyDocument {
    version: &'static str,
    statement: Vec<Statement>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Statement {
    sid: &'static str,
    effect: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<Value>,
    action: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<Value>,
}

/// The role's permissions: the five actions, listing and objects scoped to the prefix (the
/// whole bucket when there is none), as `deploy/iam/role-policy.json` and the template.
fn permissions_policy(partition: &str, bucket: &str, prefix: &str) -> PolicyDocument {
    let bucket_arn = format!("arn:{partition}:s3:::{bucket}");
    let (list_condition, objects) = if prefix.is_empty() {
        (None, format!("{bucket_arn}/*"))
    } else {
        (
            Some(json!({
                "StringLike": { "s3:prefix": [format!("{prefix}/"), format!("{prefix}/*")] }
            })),
            format!("{bucket_arn}/{prefix}/*"),
        )
    };
    PolicyDocument {
        version: "2012-10-17",
        statement: vec![
            Statement {
                sid: "FindTheBucketRegion",
                effect: "Allow",
                principal: None,
                action: json!("s3:GetBucketLocation"),
                resource: Some(bucket_arn.clone()),
                condition: None,
            },
            Statement {
                sid: "ListTheDropFolder",
                effect: "Allow",
                principal: None,
                action: json!("s3:ListBucket"),
                resource: Some(bucket_arn),
                condition: list_condition,
            },
            Statement {
                sid: "ReadMoveAndReportUnderThePrefix",
                effect: "Allow",
                principal: None,
                action: json!(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]),
                resource: Some(objects),
                condition: None,
            },
        ],
    }
}

/// Only `principal`, and only with `external_id`, may assume the role.
fn trust_policy(principal: &str, external_id: &str) -> PolicyDocument {
    PolicyDocument {
        version: "2012-10-17",
        statement: vec![Statement {
            sid: "DropfolderAssumesThisRole",
            effect: "Allow",
            principal: Some(json!({ "AWS": principal })),
            action: json!("sts:AssumeRole"),
            resource: None,
            condition: Some(json!({ "StringEquals": { "sts:ExternalId": external_id } })),
        }],
    }
}

/// The parameters of `deploy/iam/customer-role.yaml`, in its order.
fn cloudformation_parameters(
    bucket: &str,
    prefix: &str,
    principal: &str,
    external_id: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("BucketName", bucket.to_string()),
        ("Prefix", prefix.to_string()),
        ("DropfolderPrincipalArn", principal.to_string()),
        ("ExternalId", external_id.to_string()),
    ]
}

/// Who the operator's dropfolder runs as, from STS (through the integration's STS endpoint,
/// the one that will assume the customer's role); an assumed role is named by its role ARN,
/// which is what a trust policy names.
async fn operator_principal(integration: &IntegrationConfig) -> anyhow::Result<String> {
    let base = dropfolder::store::aws::base_config().await;
    let mut config = aws_sdk_sts::config::Builder::from(&base);
    if let Some(endpoint) = integration
        .sts_endpoint
        .as_ref()
        .or(integration.endpoint.as_ref())
    {
        config = config.endpoint_url(endpoint);
    }
    if base.region().is_none() {
        config = config.region(aws_config::Region::from_static("us-east-1"));
    }
    let asked = tokio::time::timeout(
        STS_TIMEOUT,
        aws_sdk_sts::Client::from_conf(config.build())
            .get_caller_identity()
            .send(),
    )
    .await
    .context("STS did not answer in time")?
    .map_err(|e| anyhow::anyhow!(dropfolder::store::aws::sdk_error_message(&e)))?;
    let arn = asked.arn().context("STS named no identity")?;
    Ok(role_of(arn))
}

/// `arn:aws:sts::111122223333:assumed-role/dropfolder/session` is the role
/// `arn:aws:iam::111122223333:role/dropfolder` (a role's path is not in the session ARN; pass
/// --principal for a role with one).
fn role_of(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if let [_, partition, "sts", _, account, resource] = parts.as_slice()
        && let Some(rest) = resource.strip_prefix("assumed-role/")
        && let Some((role, _session)) = rest.split_once('/')
    {
        return format!("arn:{partition}:iam::{account}:role/{role}");
    }
    arn.to_string()
}

fn pretty(document: &PolicyDocument) -> String {
    // Strings and JSON values only: serializing cannot fail.
    serde_json::to_string_pretty(document).unwrap_or_default()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A value as one shell word.
fn shell_quoted(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assumed_role_is_named_by_its_role() {
        assert_eq!(
            role_of("arn:aws:sts::111122223333:assumed-role/dropfolder/i-0abc"),
            "arn:aws:iam::111122223333:role/dropfolder"
        );
        assert_eq!(
            role_of("arn:aws:iam::111122223333:user/ops"),
            "arn:aws:iam::111122223333:user/ops"
        );
    }

    #[test]
    fn generated_external_ids_are_long_valid_and_different() {
        let a = generate_external_id().expect("OS randomness");
        let b = generate_external_id().expect("OS randomness");
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 2 * EXTERNAL_ID_BYTES);
        assert!(valid_external_id(&a), "{a}");
    }

    #[test]
    fn an_empty_prefix_grants_the_whole_bucket_unconditioned() {
        let policy = serde_json::to_value(permissions_policy("aws", "b", "")).expect("json");
        let list = &policy["Statement"][1];
        assert!(list.get("Condition").is_none());
        assert_eq!(policy["Statement"][2]["Resource"], "arn:aws:s3:::b/*");
    }
}
