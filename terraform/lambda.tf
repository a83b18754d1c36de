# The functions (built by `infra/lambda.sh build`), their log groups, and the
# dead-letter queue that keeps every asynchronous invocation that finally failed.

resource "aws_sqs_queue" "dead_letters" {
  name = "${var.name}-dead-letters"

  # SSE-SQS: encrypted at rest without a key the functions would need permissions on.
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600 # 14 days, the maximum: time to investigate

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions

  name              = local.log_group_names[each.key]
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.create_kms_key || var.kms_key_arn != null
      error_message = "With create_kms_key = false, set kms_key_arn to the customer managed key that encrypts the topic and the log groups."
    }
  }
}

resource "aws_lambda_function" "function" {
  for_each = local.functions
  #checkov:skip=CKV_AWS_117:The functions call only public AWS APIs and Slack; a VPC would add NAT or endpoints and no protection.
  #checkov:skip=CKV_AWS_272:Code signing is not used: the zips are built from this repository by infra/lambda.sh and deployed by the same pipeline.
  #checkov:skip=CKV_AWS_173:The environment holds no secrets (settings and the name of the webhook's parameter or secret), so the AWS managed key is enough.

  function_name = local.function_names[each.key]
  description   = each.value.description
  role          = aws_iam_role.function[each.key].arn

  filename         = each.value.zip
  source_code_hash = filebase64sha256(each.value.zip)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = [var.architecture]
  memory_size      = var.memory_size
  timeout          = each.value.timeout

  # inject and judge run one at a time: together with CHAOSLINGR_MAX_ACTIVE and the
  # re-count after injecting, this keeps concurrent experiments within the limit.
  reserved_concurrent_executions = each.value.reserved_concurrency

  environment {
    variables = each.value.environment
  }

  # JSON logs: Lambda sets AWS_LAMBDA_LOG_FORMAT=JSON and AWS_LAMBDA_LOG_LEVEL, which the
  # functions' tracing subscriber follows.
  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function[each.key].name
    application_log_level = var.log_level
    system_log_level      = "INFO"
  }

  tracing_config {
    mode = var.tracing_enabled ? "Active" : "PassThrough"
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dead_letters.arn
  }

  tags = var.tags

  # Lambda checks at creation that the role may send to the dead-letter queue.
  depends_on = [aws_iam_role_policy.function]

  lifecycle {
    # Lambda takes at most 4 KB of environment (names and values); CHAOSLINGR_TARGETS
    # grows with every account listed with its own regions.
    precondition {
      condition     = sum([for k, v in each.value.environment : length(k) + length(v)]) <= 4096
      error_message = "The environment of the ${each.key} function is ${sum([for k, v in each.value.environment : length(k) + length(v)])} characters; Lambda allows 4096. With many targets, give accounts the top-level targets.regions instead of their own, or split the accounts over two deployments."
    }
  }
}

# Retries of asynchronous invocations. inject and judge: none, the next schedule or tick
# is the retry. notify: two, for a Slack or network hiccup. archive: two, and an outcome
# may wait up to six hours (throttles included) before it is given up. What still fails
# goes to the dead-letter queue (dead_letter_config above), where the outcome JSON is
# kept for 14 days.
resource "aws_lambda_function_event_invoke_config" "function" {
  for_each = local.functions

  function_name                = aws_lambda_function.function[each.key].function_name
  maximum_retry_attempts       = each.value.retries
  maximum_event_age_in_seconds = each.value.max_event_age
}
