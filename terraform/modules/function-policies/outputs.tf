output "inject" {
  description = "The inject function's identity policy, as JSON."
  value       = jsonencode(local.inject)

  precondition {
    condition     = var.topic_arn != null
    error_message = "With create_topic = false, set existing_topic_arn to the SNS topic that receives starts and outcomes."
  }
}

output "judge" {
  description = "The judge function's identity policy, as JSON."
  value       = jsonencode(local.judge)

  precondition {
    condition     = var.topic_arn != null
    error_message = "With create_topic = false, set existing_topic_arn to the SNS topic that receives starts and outcomes."
  }
}

output "notify" {
  description = "The notify function's identity policy, as JSON."
  value       = jsonencode(local.notify)

  precondition {
    condition     = var.webhook_parameter_arn == null || var.webhook_secret_arn == null
    error_message = "Set at most one of slack_webhook_ssm_parameter and slack_webhook_secret_arn: the notifier reads the webhook URL from exactly one place."
  }
}

output "archive" {
  description = "The archive function's identity policy, as JSON, or null without archive_bucket."
  value       = local.archive == null ? null : jsonencode(local.archive)

  precondition {
    condition     = var.archive_bucket == null || contains(keys(var.log_group_arns), "archive")
    error_message = "With archive_bucket set, log_group_arns needs an entry for archive."
  }
}

output "archive_reader" {
  description = "Identity policy, as JSON, for the people who read the archive (`chaoslingr report --archive`): list and get the outcome objects, decrypt them; or null without archive_bucket."
  value       = local.archive_reader == null ? null : jsonencode(local.archive_reader)
}
