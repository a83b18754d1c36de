# The topic every start and outcome is published to (created KMS-encrypted, or the
# caller's), and the optional Slack notifier subscribed to it. The archive's subscription
# is in archive.tf.

resource "aws_sns_topic" "this" {
  count = var.create_topic ? 1 : 0

  name              = var.name
  display_name      = "ChaoSlingr"
  kms_master_key_id = local.kms_key_arn

  tags = var.tags
}

# The notifier receives only ChaoSlingr's own messages (starts and outcomes carry the
# `experiment` attribute). Alarm notifications on the same topic are for people and
# other subscribers; the notifier would refuse them as unreadable.
#
# Quiet outcomes never reach Slack: a scheduled run that aborted in pre-flight because
# nothing was meant to run (the kill switch is on, outside the allowed hours, the maximum
# of active experiments reached) is published with the attribute `quiet = "true"`, so the
# archive keeps the record, but an hourly "aborted: disabled" in the channel would only
# teach people to ignore it. SNS ANDs the keys: both must hold.
resource "aws_sns_topic_subscription" "notify" {
  count = local.notify_enabled ? 1 : 0

  topic_arn = local.topic_arn
  protocol  = "lambda"
  endpoint  = aws_lambda_function.function["notify"].arn

  filter_policy_scope = "MessageAttributes"
  filter_policy = jsonencode({
    experiment = [{ exists = true }]
    quiet      = [{ exists = false }]
  })
}

resource "aws_lambda_permission" "notify_from_topic" {
  count = local.notify_enabled ? 1 : 0

  statement_id  = "AllowInvokeFromChaoSlingrTopic"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["notify"].function_name
  principal     = "sns.amazonaws.com"
  source_arn    = local.topic_arn
}
