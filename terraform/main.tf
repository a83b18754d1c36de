# ChaoSlingr's scheduled security chaos experiments: the inject, judge, notify and archive
# functions, their schedules, roles, topic, dead-letter queue, outcome archive, optional
# detectors and a dashboard. The resources are split by topic: kms.tf, iam.tf, lambda.tf,
# schedule.tf, notifications.tf, archive.tf, detectors.tf, dashboard.tf.

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  # The one key for the topic, the log groups and the archive: one made here, or the
  # caller's.
  # Whether things exist is decided by booleans only, so counts never wait for an ARN
  # that is known only after apply.
  kms_key_arn = var.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn

  topic_arn = var.create_topic ? aws_sns_topic.this[0].arn : var.existing_topic_arn
  # Publishers of a topic encrypted with a customer managed key need that key.
  topic_has_kms_key = var.create_topic || var.existing_topic_kms_key_arn != null
  topic_kms_key_arn = var.create_topic ? local.kms_key_arn : var.existing_topic_kms_key_arn

  # The notifier exists only when the user named where the webhook URL is stored.
  notify_enabled = var.slack_webhook_ssm_parameter != null || var.slack_webhook_secret_arn != null
  webhook_source = (
    var.slack_webhook_ssm_parameter != null ? "ssm:${var.slack_webhook_ssm_parameter}" :
    var.slack_webhook_secret_arn != null ? "secretsmanager:${var.slack_webhook_secret_arn}" :
    null
  )
  webhook_parameter_arn = var.slack_webhook_ssm_parameter == null ? null : (
    startswith(var.slack_webhook_ssm_parameter, "arn:")
    ? var.slack_webhook_ssm_parameter
    : "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(var.slack_webhook_ssm_parameter, "/")}"
  )
  # SSM SecureStrings are decrypted with the parameter's key: the caller's, or by default
  # the AWS managed key behind alias/aws/ssm (IAM policies need the key ARN, not the alias).
  webhook_parameter_kms_key_arn = var.slack_webhook_ssm_parameter == null ? null : (
    var.slack_webhook_kms_key_arn != null ? var.slack_webhook_kms_key_arn : data.aws_kms_alias.ssm[0].target_key_arn
  )

  # The outcome archive (archive.tf). Its bucket is encrypted with the module's key when
  # there is one (decided by booleans, like every count), else with S3 managed keys.
  # Written as a conditional: checkov cannot evaluate `a || b != null`.
  archive_uses_kms    = var.create_kms_key ? true : var.kms_key_arn != null
  archive_kms_key_arn = local.archive_uses_kms ? local.kms_key_arn : null
  archive_bucket      = var.archive_outcomes ? aws_s3_bucket.archive[0].id : null
  archive_url         = var.archive_outcomes ? "s3://${aws_s3_bucket.archive[0].id}/${var.archive_prefix}" : null

  # ARN prefixes the policies scope to.
  ec2_arn_prefix          = "arn:${local.partition}:ec2:${local.region}:${local.account_id}"
  security_group_arns     = "${local.ec2_arn_prefix}:security-group/*"
  security_group_rule_arn = "${local.ec2_arn_prefix}:security-group-rule/*"
  alarm_arn_prefix        = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}"
  alarm_arns              = "${local.alarm_arn_prefix}:alarm:*"
  security_hub_arn        = "arn:${local.partition}:securityhub:${local.region}:${local.account_id}:hub/default"

  # The Config rule and the network ACL alarm created here are detectors unless the
  # caller says otherwise.
  config_rule_detector = "config:${var.config_rule_name}"
  detectors = distinct(concat(
    var.detectors,
    var.create_config_rule && var.add_config_rule_to_detectors ? [local.config_rule_detector] : [],
    local.create_nacl_change_alarm && var.add_nacl_change_alarm_to_detectors ? ["alarm:${local.nacl_change_alarm_name}"] : [],
  ))

  # CHAOSLINGR_* of inject and judge. Settings left null are not set, so the functions'
  # own defaults (the README's Configuration table) apply.
  experiment_environment = merge(
    {
      # The kill switch reaches the functions too: a run started by hand (or a retry
      # already queued) aborts instead of injecting.
      CHAOSLINGR_ENABLED      = tostring(var.enabled)
      CHAOSLINGR_OPT_IN_TAG   = var.opt_in_tag_key
      CHAOSLINGR_OPT_IN_VALUE = var.opt_in_tag_value
      CHAOSLINGR_TOPIC_ARN    = local.topic_arn
      CHAOSLINGR_NAMESPACE    = var.namespace
      CHAOSLINGR_MAX_ACTIVE   = tostring(var.max_active)
      CHAOSLINGR_DRY_RUN      = tostring(var.dry_run)
    },
    length(local.detectors) > 0 ? { CHAOSLINGR_DETECTORS = join(",", local.detectors) } : {},
    var.window != null ? { CHAOSLINGR_WINDOW = var.window } : {},
    var.poll_interval != null ? { CHAOSLINGR_POLL_INTERVAL = var.poll_interval } : {},
    var.port_range != null ? { CHAOSLINGR_PORT_RANGE = var.port_range } : {},
    var.max_ports != null ? { CHAOSLINGR_MAX_PORTS = tostring(var.max_ports) } : {},
    length(var.protocols) > 0 ? { CHAOSLINGR_PROTOCOLS = join(",", distinct(var.protocols)) } : {},
    var.cidr != null ? { CHAOSLINGR_CIDR = var.cidr } : {},
    length(var.authorized_ports) > 0 ? { CHAOSLINGR_AUTHORIZED_PORTS = join(",", var.authorized_ports) } : {},
    length(var.stop_alarms) > 0 ? { CHAOSLINGR_STOP_ALARMS = join(",", var.stop_alarms) } : {},
    var.allowed_hours != null ? { CHAOSLINGR_ALLOWED_HOURS = var.allowed_hours } : {},
    var.targets != null ? { CHAOSLINGR_TARGETS = local.targets_json } : {},
    var.max_active_total != null ? { CHAOSLINGR_MAX_ACTIVE_TOTAL = tostring(var.max_active_total) } : {},
    var.scope_concurrency != null ? { CHAOSLINGR_SCOPE_CONCURRENCY = tostring(var.scope_concurrency) } : {},
  )

  # Many accounts and regions: CHAOSLINGR_TARGETS, with empty lists and a missing external
  # id left out (the functions' defaults: the top-level regions, then their own region).
  # The role is named with its path, without the leading "/" (team/chaoslingr-target).
  targets_json = var.targets == null ? null : jsonencode(merge(
    {
      accounts = [
        for a in var.targets.accounts : merge({ id = a.id }, length(a.regions) > 0 ? { regions = a.regions } : {})
      ]
      role = "${trimprefix(var.targets.role_path, "/")}${var.targets.role_name}"
    },
    length(var.targets.regions) > 0 ? { regions = var.targets.regions } : {},
    var.targets.external_id != null ? { external_id = var.targets.external_id } : {},
  ))

  # The target role of each account, which inject and judge may assume (and nothing else
  # of the accounts): arn:<partition>:iam::<account>:role<path><name>.
  target_role_arns = var.targets == null ? null : [
    for a in var.targets.accounts : "arn:${local.partition}:iam::${a.id}:role${var.targets.role_path}${var.targets.role_name}"
  ]

  default_zip = {
    inject  = "${path.module}/../target/lambda/inject/bootstrap.zip"
    judge   = "${path.module}/../target/lambda/judge/bootstrap.zip"
    notify  = "${path.module}/../target/lambda/notify/bootstrap.zip"
    archive = "${path.module}/../target/lambda/archive/bootstrap.zip"
  }

  # One entry per function; lambda.tf and iam.tf create one of each resource per entry.
  # Retries: inject and judge never retry, because the next schedule or tick is the
  # retry (and a late inject must not start an experiment nobody expects); notify
  # retries twice so a Slack hiccup does not lose a message; archive retries twice and
  # keeps an outcome for up to six hours (the maximum), because the archive is the record
  # an auditor reads: a throttle or an S3 hiccup must not lose it, and a late write is
  # harmless (the same key is overwritten).
  functions = merge(
    {
      inject = {
        description          = "ChaoSlingr: starts one experiment of a scheduled technique (pre-flight, plan, inject, mark, announce)."
        zip                  = coalesce(var.inject_zip_path, local.default_zip.inject)
        timeout              = var.inject_timeout
        reserved_concurrency = 1
        retries              = 0
        max_event_age        = 300
        environment          = tomap(local.experiment_environment)
      }
      judge = {
        description          = "ChaoSlingr: concludes and reverts active experiments every tick; the durable timer and safety net."
        zip                  = coalesce(var.judge_zip_path, local.default_zip.judge)
        timeout              = var.judge_timeout
        reserved_concurrency = 1
        retries              = 0
        max_event_age        = 60
        environment          = tomap(local.experiment_environment)
      }
    },
    local.notify_enabled ? {
      notify = {
        description          = "ChaoSlingr: posts experiment starts and outcomes from the topic to Slack."
        zip                  = coalesce(var.notify_zip_path, local.default_zip.notify)
        timeout              = var.notify_timeout
        reserved_concurrency = var.notify_reserved_concurrency
        retries              = 2
        max_event_age        = 3600
        environment          = tomap({ CHAOSLINGR_SLACK_WEBHOOK = local.webhook_source })
      }
    } : {},
    var.archive_outcomes ? {
      archive = {
        description          = "ChaoSlingr: keeps every outcome from the topic as one object in the S3 outcome archive."
        zip                  = coalesce(var.archive_zip_path, local.default_zip.archive)
        timeout              = var.archive_timeout
        reserved_concurrency = var.archive_reserved_concurrency
        retries              = 2
        max_event_age        = 21600
        environment          = tomap({ CHAOSLINGR_ARCHIVE = local.archive_url })
      }
    } : {},
  )

  function_names  = { for k in ["inject", "judge", "notify", "archive"] : k => "${var.name}-${k}" }
  log_group_names = { for k, name in local.function_names : k => "/aws/lambda/${name}" }
}

# The key ARN behind alias/aws/ssm, read only when the webhook parameter uses it.
data "aws_kms_alias" "ssm" {
  count = var.slack_webhook_ssm_parameter != null && var.slack_webhook_kms_key_arn == null ? 1 : 0

  name = "alias/aws/ssm"
}
