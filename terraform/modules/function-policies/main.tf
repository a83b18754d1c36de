# The identity policies of the functions (inject, judge, notify, and archive when there is
# an archive bucket) and the archive's reader policy, as plain data: every statement is
# built from the inputs with Terraform core, so `terraform output` renders exactly what
# the root module deploys (the detection lab enforces these documents in the end-to-end
# tests).

# The target-side statements of inject and judge, defined once in target-policies: here
# for the functions' own account and region, and for the target role of each member
# account (modules/target-role) with region `*`.
module "targets" {
  source = "./target-policies"

  partition          = var.partition
  region             = var.region
  account_id         = var.account_id
  opt_in_tag_key     = var.opt_in_tag_key
  opt_in_tag_value   = var.opt_in_tag_value
  marker_tag_prefix  = var.marker_tag_prefix
  experiment_tag_key = var.experiment_tag_key
  experiments        = var.experiments
}

locals {
  # The outcome archive: the bucket, and the objects under its prefix. Nothing else in the
  # bucket is granted, to the function or to readers.
  archive_bucket_arn  = var.archive_bucket == null ? null : "arn:${var.partition}:s3:::${var.archive_bucket}"
  archive_objects_arn = var.archive_bucket == null ? null : "arn:${var.partition}:s3:::${var.archive_bucket}/${var.archive_prefix}outcomes/*"
  # S3 uses the bucket's key on the caller's behalf, and only for this region's S3.
  via_s3 = { StringEquals = { "kms:ViaService" = ["s3.${var.region}.amazonaws.com"] } }

  # Single account: inject and judge act on the targets of their own account and region
  # with their own roles, so their policies hold the target-side statements. Many
  # accounts (target_role_arns set): they hold only sts:AssumeRole on the target roles,
  # which grant those statements in each member account (modules/target-role).
  single_account = var.target_role_arns == null

  assume_target_roles = {
    Sid      = "AssumeTargetRoles"
    Effect   = "Allow"
    Action   = ["sts:AssumeRole"]
    Resource = local.single_account ? [] : var.target_role_arns
  }

  put_metrics_in_namespace = {
    Sid       = "PutMetricsInNamespace"
    Effect    = "Allow"
    Action    = ["cloudwatch:PutMetricData"]
    Resource  = ["*"]
    Condition = { StringEquals = { "cloudwatch:namespace" = [var.namespace] } }
  }

  # Before counting an outcome someone may already have counted (a judge or a person's
  # run that stopped between PutMetricData and its mark), and after a PutMetricData whose
  # answer was lost, the experiment's own `Recorded` datum is read back. No resource-level
  # permissions exist for this read.
  read_back_recorded_outcomes = {
    Sid      = "ReadBackRecordedOutcomes"
    Effect   = "Allow"
    Action   = ["cloudwatch:GetMetricStatistics"]
    Resource = ["*"]
  }

  publish_to_topic = {
    Sid      = "PublishToTopic"
    Effect   = "Allow"
    Action   = ["sns:Publish"]
    Resource = [var.topic_arn]
  }

  use_topic_key = var.topic_kms_key_arn == null ? [] : [{
    Sid       = "UseTopicKey"
    Effect    = "Allow"
    Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
    Resource  = [var.topic_kms_key_arn]
    Condition = { StringEquals = { "kms:ViaService" = ["sns.${var.region}.amazonaws.com"] } }
  }]

  # Used by AWS on the function's behalf: Lambda writes the logs, sends failed
  # asynchronous invocations to the dead-letter queue and sends traces with the role.
  # One per function given a log group.
  runtime = { for f in keys(var.log_group_arns) : f => concat(
    [
      {
        Sid      = "WriteOwnLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = ["${var.log_group_arns[f]}:*"]
      },
      {
        Sid      = "SendToDeadLetterQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [var.dead_letter_queue_arn]
      },
    ],
    # X-Ray does not support resource-level permissions.
    var.tracing_enabled ? [{
      Sid      = "WriteTraces"
      Effect   = "Allow"
      Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      Resource = ["*"]
    }] : [],
  ) }

  ##############################################################################
  # inject: pre-flight, plan, inject the tagged rule or the recorded ACL entry, mark the
  # target, announce
  ##############################################################################

  inject = {
    Version = "2012-10-17"
    Statement = concat(
      # Reading and changing the targets, reading the detectors (target-policies); or
      # assuming the target roles. (For-expressions with a filter, not a conditional:
      # the two sides are tuples of different shapes, which a conditional cannot return.)
      [for s in module.targets.inject_statements : s if local.single_account],
      [for s in [local.assume_target_roles] : s if !local.single_account],
      [
        local.put_metrics_in_namespace,
        local.read_back_recorded_outcomes,
        local.publish_to_topic,
      ],
      local.use_topic_key,
      local.runtime["inject"],
    )
  }

  ##############################################################################
  # judge: observe, conclude, revert, record; never opens a port
  ##############################################################################

  judge = {
    Version = "2012-10-17"
    Statement = concat(
      # Reading and reverting the targets, reading the detectors (target-policies); or
      # assuming the target roles.
      [for s in module.targets.judge_statements : s if local.single_account],
      [for s in [local.assume_target_roles] : s if !local.single_account],
      [
        local.put_metrics_in_namespace,
        local.read_back_recorded_outcomes,
        local.publish_to_topic,
      ],
      local.use_topic_key,
      local.runtime["judge"],
    )
  }

  ##############################################################################
  # notify: read the one webhook secret, post to Slack
  ##############################################################################

  notify = {
    Version = "2012-10-17"
    Statement = concat(
      var.webhook_parameter_arn == null ? [] : [{
        Sid      = "ReadWebhookParameter"
        Effect   = "Allow"
        Action   = ["ssm:GetParameter"]
        Resource = [var.webhook_parameter_arn]
      }],
      # A SecureString is decrypted by SSM with the parameter's key, on the caller's behalf.
      var.webhook_parameter_arn == null || var.webhook_parameter_kms_key_arn == null ? [] : [{
        Sid       = "DecryptWebhookParameter"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [var.webhook_parameter_kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = ["ssm.${var.region}.amazonaws.com"] } }
      }],
      var.webhook_secret_arn == null ? [] : [{
        Sid      = "ReadWebhookSecret"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = [var.webhook_secret_arn]
      }],
      var.webhook_secret_arn == null || var.webhook_secret_kms_key_arn == null ? [] : [{
        Sid       = "DecryptWebhookSecret"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [var.webhook_secret_kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = ["secretsmanager.${var.region}.amazonaws.com"] } }
      }],
      local.runtime["notify"],
    )
  }

  ##############################################################################
  # archive: write each outcome as one object under the archive's prefix
  ##############################################################################

  # PutObject only: no read, list or delete, so the function can add and overwrite
  # records but never read back or remove the archive. It sends no encryption headers;
  # the bucket's default encryption (SSE-KMS with the bucket key) asks KMS for a data key
  # on its behalf, which is all a single-part upload needs. Without its log group the
  # output's precondition says what is missing.
  archive = var.archive_bucket == null || !contains(keys(var.log_group_arns), "archive") ? null : {
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid      = "WriteOutcomeObjects"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = [local.archive_objects_arn]
      }],
      var.archive_kms_key_arn == null ? [] : [{
        Sid       = "EncryptOutcomeObjects"
        Effect    = "Allow"
        Action    = ["kms:GenerateDataKey"]
        Resource  = [var.archive_kms_key_arn]
        Condition = local.via_s3
      }],
      local.runtime["archive"],
    )
  }

  ##############################################################################
  # archive reader: for the people who run `chaoslingr report --archive`
  ##############################################################################

  # Listing and reading the outcomes, nothing else: listing is limited to keys under the
  # outcomes prefix (the caller must ask for that prefix), and there is no write or delete.
  archive_reader = var.archive_bucket == null ? null : {
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid       = "ListOutcomeObjects"
          Effect    = "Allow"
          Action    = ["s3:ListBucket"]
          Resource  = [local.archive_bucket_arn]
          Condition = { StringLike = { "s3:prefix" = ["${var.archive_prefix}outcomes/*"] } }
        },
        {
          Sid      = "ReadOutcomeObjects"
          Effect   = "Allow"
          Action   = ["s3:GetObject"]
          Resource = [local.archive_objects_arn]
        },
      ],
      var.archive_kms_key_arn == null ? [] : [{
        Sid       = "DecryptOutcomeObjects"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [var.archive_kms_key_arn]
        Condition = local.via_s3
      }],
    )
  }
}
