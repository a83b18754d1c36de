output "inject_function_name" {
  description = "Name of the inject function."
  value       = aws_lambda_function.function["inject"].function_name
}

output "inject_function_arn" {
  description = "ARN of the inject function."
  value       = aws_lambda_function.function["inject"].arn
}

output "judge_function_name" {
  description = "Name of the judge function."
  value       = aws_lambda_function.function["judge"].function_name
}

output "judge_function_arn" {
  description = "ARN of the judge function."
  value       = aws_lambda_function.function["judge"].arn
}

output "notify_function_name" {
  description = "Name of the notify function, or null when no Slack webhook is configured."
  value       = try(aws_lambda_function.function["notify"].function_name, null)
}

output "notify_function_arn" {
  description = "ARN of the notify function, or null when no Slack webhook is configured."
  value       = try(aws_lambda_function.function["notify"].arn, null)
}

output "archive_function_name" {
  description = "Name of the archive function, or null when archive_outcomes is false."
  value       = try(aws_lambda_function.function["archive"].function_name, null)
}

output "archive_function_arn" {
  description = "ARN of the archive function, or null when archive_outcomes is false."
  value       = try(aws_lambda_function.function["archive"].arn, null)
}

output "inject_role_arn" {
  description = "ARN of the inject function's execution role."
  value       = aws_iam_role.function["inject"].arn
}

output "judge_role_arn" {
  description = "ARN of the judge function's execution role."
  value       = aws_iam_role.function["judge"].arn
}

output "notify_role_arn" {
  description = "ARN of the notify function's execution role, or null when no Slack webhook is configured."
  value       = try(aws_iam_role.function["notify"].arn, null)
}

output "archive_role_arn" {
  description = "ARN of the archive function's execution role, or null when archive_outcomes is false."
  value       = try(aws_iam_role.function["archive"].arn, null)
}

output "target_role_trusted_principals" {
  description = "The role ARNs a target role (modules/target-role, or the StackSet template) must trust: the inject and judge roles. Add the roles of operators who run the chaoslingr CLI across accounts."
  value       = [aws_iam_role.function["inject"].arn, aws_iam_role.function["judge"].arn]
}

output "target_role_arns" {
  description = "With targets: the target role of each account, which inject and judge may assume (and nothing else of the accounts). null without targets."
  value       = local.target_role_arns
}

output "targets_json" {
  description = "With targets: the functions' CHAOSLINGR_TARGETS (JSON), for running the chaoslingr CLI over the same accounts and regions. null without targets."
  value       = local.targets_json
}

output "scheduler_role_arn" {
  description = "ARN of the role EventBridge Scheduler uses to invoke inject and judge."
  value       = aws_iam_role.scheduler.arn
}

output "log_group_names" {
  description = "Log group of each function, by function (inject, judge, notify, archive)."
  value       = { for k, g in aws_cloudwatch_log_group.function : k => g.name }
}

output "topic_arn" {
  description = "ARN of the SNS topic receiving starts and outcomes (created, or existing_topic_arn). Subscribe e-mail or chat integrations here."
  value       = local.topic_arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key encrypting the topic, the log groups and the outcome archive (created, or kms_key_arn)."
  value       = local.kms_key_arn
}

output "archive_url" {
  description = "Where outcomes are archived, `s3://<bucket>/<archive_prefix>`: the value of CHAOSLINGR_ARCHIVE and of `chaoslingr report --archive`. null when archive_outcomes is false."
  value       = local.archive_url
}

output "archive_bucket" {
  description = "Name of the outcome archive's bucket, or null when archive_outcomes is false."
  value       = local.archive_bucket
}

output "archive_reader_policy_json" {
  description = "IAM policy (JSON) for the people or roles that run `chaoslingr report --archive`: s3:ListBucket under `<archive_prefix>outcomes/`, s3:GetObject on the outcome objects, and kms:Decrypt through S3 when the bucket uses the module's KMS key. Attach it yourself; null when archive_outcomes is false."
  value       = var.archive_outcomes ? module.function_policies.archive_reader : null
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue of failed asynchronous invocations."
  value       = aws_sqs_queue.dead_letters.url
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dead_letters.arn
}

output "inject_schedule_name" {
  description = "Name of the EventBridge Scheduler schedule that invokes inject."
  value       = aws_scheduler_schedule.inject.name
}

output "judge_schedule_name" {
  description = "Name of the EventBridge Scheduler schedule that invokes judge."
  value       = aws_scheduler_schedule.judge.name
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard, or null when create_dashboard is false."
  value       = try(aws_cloudwatch_dashboard.this[0].dashboard_name, null)
}

output "config_rule_name" {
  description = "Name of the Config rule created by the module, or null."
  value       = try(aws_config_config_rule.open_ports[0].name, null)
}

output "nacl_change_alarm_name" {
  description = "Name of the alarm on network ACL changes (the CIS control) created by the module, or null."
  value       = try(aws_cloudwatch_metric_alarm.network_acl_changes[0].alarm_name, null)
}

output "undetected_alarm_name" {
  description = "Name of the alarm on undetected outcomes, or null."
  value       = try(aws_cloudwatch_metric_alarm.undetected[0].alarm_name, null)
}

output "scope_errors_alarm_name" {
  description = "Name of the alarm on accounts and regions the functions could not work on (metric ScopeErrors), or null (no targets, or create_scope_errors_alarm = false)."
  value       = try(aws_cloudwatch_metric_alarm.scope_errors[0].alarm_name, null)
}

output "dead_letter_alarm_name" {
  description = "Name of the alarm on the dead-letter queue, or null."
  value       = try(aws_cloudwatch_metric_alarm.dead_letters[0].alarm_name, null)
}

output "detectors" {
  description = "The detectors every experiment measures (CHAOSLINGR_DETECTORS), including the module's Config rule and network ACL alarm when added."
  value       = local.detectors
}

output "experiments" {
  description = "The techniques the inject schedule picks from (its event's `experiment`)."
  value       = var.experiments
}

output "enabled" {
  description = "Whether experiments may start (false: the kill switch is on)."
  value       = var.enabled
}
