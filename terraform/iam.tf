# One role per function, each with one inline policy (`inject`, `judge`, `notify`,
# `archive`, built in modules/function-policies), plus the scheduler's role. Least
# privilege: every action is listed, and every resource is scoped where the service
# supports it. With `targets`, inject and judge act on other accounts through the target
# role of each (modules/target-role) and hold only sts:AssumeRole for that.

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

# The function policies (and the archive's reader policy) come from a provider-free
# submodule, so that the lab can render and enforce exactly these documents offline
# (infra/terraform.sh policies).
module "function_policies" {
  source = "./modules/function-policies"

  partition                     = local.partition
  region                        = local.region
  account_id                    = local.account_id
  opt_in_tag_key                = var.opt_in_tag_key
  opt_in_tag_value              = var.opt_in_tag_value
  experiments                   = var.experiments
  namespace                     = var.namespace
  topic_arn                     = local.topic_arn
  topic_kms_key_arn             = local.topic_has_kms_key ? local.topic_kms_key_arn : null
  webhook_parameter_arn         = local.webhook_parameter_arn
  webhook_parameter_kms_key_arn = local.webhook_parameter_kms_key_arn
  webhook_secret_arn            = var.slack_webhook_secret_arn
  webhook_secret_kms_key_arn    = var.slack_webhook_kms_key_arn
  # The notifier's and the archive's log groups exist only with those functions; their
  # ARNs are known either way.
  log_group_arns = merge(
    { for f, name in local.log_group_names : f => "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${name}" },
    { for f, group in aws_cloudwatch_log_group.function : f => group.arn },
  )
  dead_letter_queue_arn = aws_sqs_queue.dead_letters.arn
  tracing_enabled       = var.tracing_enabled
  archive_bucket        = local.archive_bucket
  archive_prefix        = var.archive_prefix
  archive_kms_key_arn   = local.archive_kms_key_arn
  # Many accounts: inject and judge assume these roles (null: a single account).
  target_role_arns = local.target_role_arns
}

locals {
  function_policies = merge(
    {
      inject = module.function_policies.inject
      judge  = module.function_policies.judge
    },
    local.notify_enabled ? { notify = module.function_policies.notify } : {},
    var.archive_outcomes ? { archive = module.function_policies.archive } : {},
  )
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
