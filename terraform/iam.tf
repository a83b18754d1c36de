# One role per function, each with one inline policy built from one policy document
# (`inject`, `judge`, `notify`), plus the scheduler's role. Least privilege: every action
# is listed, and every resource is scoped where the service supports it. Statements that
# depend on settings are `dynamic` blocks; their actions are still literal.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    sid     = "LambdaAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name                 = local.function_names[each.key]
  description          = "ChaoSlingr ${each.key} function"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  permissions_boundary = var.permissions_boundary_arn

  tags = var.tags
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = local.function_names[each.key]
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]
}

locals {
  function_policies = merge(
    {
      inject = data.aws_iam_policy_document.inject.json
      judge  = data.aws_iam_policy_document.judge.json
    },
    local.notify_enabled ? { notify = data.aws_iam_policy_document.notify[0].json } : {},
  )
}

################################################################################
# inject: pre-flight, plan, inject the tagged rule, mark the group, announce
################################################################################

data "aws_iam_policy_document" "inject" {
  lifecycle {
    precondition {
      condition     = var.create_topic || var.existing_topic_arn != null
      error_message = "With create_topic = false, set existing_topic_arn to the SNS topic that receives starts and outcomes."
    }
  }

  # Listing groups by the opt-in tag and reading their rules. These Describe calls do not
  # support resource-level permissions.
  statement {
    sid = "DescribeSecurityGroups"
    actions = [
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSecurityGroupRules",
    ]
    resources = ["*"]
  }

  # Opening the experiment's port and, when racing starters step back, revoking it: only
  # on groups whose owners opted in. Removing the opt-in tag from a group therefore stops
  # any change to it, including a revert (see README.md, "IAM").
  statement {
    sid = "ChangeIngressOfOptedInGroups"
    actions = [
      "ec2:AuthorizeSecurityGroupIngress",
      "ec2:RevokeSecurityGroupIngress",
    ]
    resources = [local.security_group_arns]

    condition {
      test     = "StringEqualsIgnoreCase"
      variable = "aws:ResourceTag/${var.opt_in_tag_key}"
      values   = [var.opt_in_tag_value]
    }
  }

  # AuthorizeSecurityGroupIngress with TagSpecifications also authorizes on the rule it
  # creates; the group statement above is what limits where that rule can be.
  statement {
    sid       = "CreateTaggedIngressRule"
    actions   = ["ec2:AuthorizeSecurityGroupIngress"]
    resources = [local.security_group_rule_arn]
  }

  # The experiment record is written on the rule as it is created, never afterwards, so an
  # untagged rule cannot exist and no other rule can be tagged.
  statement {
    sid       = "TagRuleAtCreation"
    actions   = ["ec2:CreateTags"]
    resources = [local.security_group_rule_arn]

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["AuthorizeSecurityGroupIngress"]
    }
  }

  # The group marker: chaoslingr:* tags on opted-in groups, never the opt-in tag itself,
  # and never a DeleteTags without tag keys (which would remove every tag).
  statement {
    sid = "MarkOptedInGroups"
    actions = [
      "ec2:CreateTags",
      "ec2:DeleteTags",
    ]
    resources = [local.security_group_arns]

    condition {
      test     = "StringEqualsIgnoreCase"
      variable = "aws:ResourceTag/${var.opt_in_tag_key}"
      values   = [var.opt_in_tag_value]
    }

    condition {
      test     = "ForAllValues:StringLike"
      variable = "aws:TagKeys"
      values   = ["chaoslingr:*"]
    }

    condition {
      test     = "ForAllValues:StringNotEquals"
      variable = "aws:TagKeys"
      values   = [var.opt_in_tag_key]
    }

    condition {
      test     = "Null"
      variable = "aws:TagKeys"
      values   = ["false"]
    }
  }

  # alarm: detectors and stop-condition alarms.
  statement {
    sid       = "ReadAlarms"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = [local.alarm_arns]
  }

  # config: detectors. Granted always, not only when a config: detector is configured,
  # because the schedule's input can name detectors per run. Read-only; the action does
  # not support resource-level permissions.
  statement {
    sid       = "ReadConfigCompliance"
    actions   = ["config:GetComplianceDetailsByResource"]
    resources = ["*"]
  }

  # Metrics go into the configured namespace only.
  statement {
    sid       = "PutMetricsInNamespace"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.namespace]
    }
  }

  statement {
    sid       = "PublishToTopic"
    actions   = ["sns:Publish"]
    resources = [local.topic_arn]
  }

  # Publishing to a topic encrypted with a customer managed key needs the key, via SNS.
  dynamic "statement" {
    for_each = local.topic_has_kms_key ? [local.topic_kms_key_arn] : []

    content {
      sid = "UseTopicKey"
      actions = [
        "kms:GenerateDataKey",
        "kms:Decrypt",
      ]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sns.${local.region}.amazonaws.com"]
      }
    }
  }

  statement {
    sid = "WriteOwnLogs"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.function["inject"].arn}:*"]
  }

  statement {
    sid       = "SendToDeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
  }

  # X-Ray does not support resource-level permissions.
  dynamic "statement" {
    for_each = var.tracing_enabled ? [true] : []

    content {
      sid = "WriteTraces"
      actions = [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
      ]
      resources = ["*"]
    }
  }
}

################################################################################
# judge: observe, conclude, revert, record; never opens a port
################################################################################

data "aws_iam_policy_document" "judge" {
  statement {
    sid = "DescribeSecurityGroups"
    actions = [
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSecurityGroupRules",
    ]
    resources = ["*"]
  }

  # The revert. No AuthorizeSecurityGroupIngress: the judge cannot open a port.
  statement {
    sid       = "RevokeIngressOfOptedInGroups"
    actions   = ["ec2:RevokeSecurityGroupIngress"]
    resources = [local.security_group_arns]

    condition {
      test     = "StringEqualsIgnoreCase"
      variable = "aws:ResourceTag/${var.opt_in_tag_key}"
      values   = [var.opt_in_tag_value]
    }
  }

  statement {
    sid = "MarkOptedInGroups"
    actions = [
      "ec2:CreateTags",
      "ec2:DeleteTags",
    ]
    resources = [local.security_group_arns]

    condition {
      test     = "StringEqualsIgnoreCase"
      variable = "aws:ResourceTag/${var.opt_in_tag_key}"
      values   = [var.opt_in_tag_value]
    }

    condition {
      test     = "ForAllValues:StringLike"
      variable = "aws:TagKeys"
      values   = ["chaoslingr:*"]
    }

    condition {
      test     = "ForAllValues:StringNotEquals"
      variable = "aws:TagKeys"
      values   = [var.opt_in_tag_key]
    }

    condition {
      test     = "Null"
      variable = "aws:TagKeys"
      values   = ["false"]
    }
  }

  statement {
    sid       = "ReadAlarms"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = [local.alarm_arns]
  }

  # Granted always: the judge also concludes experiments started by the CLI, whose
  # detectors come from the rule's tags, not from this module's settings.
  statement {
    sid       = "ReadConfigCompliance"
    actions   = ["config:GetComplianceDetailsByResource"]
    resources = ["*"]
  }

  statement {
    sid       = "ReadSecurityHubFindings"
    actions   = ["securityhub:GetFindings"]
    resources = [local.security_hub_arn]
  }

  statement {
    sid       = "PutMetricsInNamespace"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.namespace]
    }
  }

  statement {
    sid       = "PublishToTopic"
    actions   = ["sns:Publish"]
    resources = [local.topic_arn]
  }

  dynamic "statement" {
    for_each = local.topic_has_kms_key ? [local.topic_kms_key_arn] : []

    content {
      sid = "UseTopicKey"
      actions = [
        "kms:GenerateDataKey",
        "kms:Decrypt",
      ]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sns.${local.region}.amazonaws.com"]
      }
    }
  }

  statement {
    sid = "WriteOwnLogs"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.function["judge"].arn}:*"]
  }

  statement {
    sid       = "SendToDeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
  }

  dynamic "statement" {
    for_each = var.tracing_enabled ? [true] : []

    content {
      sid = "WriteTraces"
      actions = [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
      ]
      resources = ["*"]
    }
  }
}

################################################################################
# notify: read the one webhook secret, post to Slack
################################################################################

data "aws_iam_policy_document" "notify" {
  count = local.notify_enabled ? 1 : 0

  lifecycle {
    precondition {
      condition     = var.slack_webhook_ssm_parameter == null || var.slack_webhook_secret_arn == null
      error_message = "Set at most one of slack_webhook_ssm_parameter and slack_webhook_secret_arn: the notifier reads the webhook URL from exactly one place."
    }
  }

  dynamic "statement" {
    for_each = var.slack_webhook_ssm_parameter != null ? [local.webhook_parameter_arn] : []

    content {
      sid       = "ReadWebhookParameter"
      actions   = ["ssm:GetParameter"]
      resources = [statement.value]
    }
  }

  # A SecureString is decrypted by SSM with the parameter's key, on the caller's behalf.
  dynamic "statement" {
    for_each = var.slack_webhook_ssm_parameter != null ? [local.webhook_parameter_kms_key_arn] : []

    content {
      sid       = "DecryptWebhookParameter"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${local.region}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.slack_webhook_secret_arn != null ? [var.slack_webhook_secret_arn] : []

    content {
      sid       = "ReadWebhookSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.slack_webhook_secret_arn != null && var.slack_webhook_kms_key_arn != null ? [var.slack_webhook_kms_key_arn] : []

    content {
      sid       = "DecryptWebhookSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }

  statement {
    sid = "WriteOwnLogs"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.function["notify"].arn}:*"]
  }

  statement {
    sid       = "SendToDeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
  }

  dynamic "statement" {
    for_each = var.tracing_enabled ? [true] : []

    content {
      sid = "WriteTraces"
      actions = [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
      ]
      resources = ["*"]
    }
  }
}

################################################################################
# EventBridge Scheduler: invokes inject and judge, nothing else
################################################################################

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    sid     = "SchedulerAssumesRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    # Only schedules of this account may use the role (confused deputy).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid     = "InvokeScheduledFunctions"
    actions = ["lambda:InvokeFunction"]
    resources = [
      aws_lambda_function.function["inject"].arn,
      aws_lambda_function.function["judge"].arn,
    ]
  }
}

resource "aws_iam_role" "scheduler" {
  name                 = "${var.name}-scheduler"
  description          = "EventBridge Scheduler: invokes the ChaoSlingr inject and judge functions"
  assume_role_policy   = data.aws_iam_policy_document.scheduler_assume.json
  permissions_boundary = var.permissions_boundary_arn

  tags = var.tags
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "${var.name}-scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
