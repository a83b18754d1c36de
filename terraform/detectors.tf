# Optional detector and alarms shipped with the module.

locals {
  # CHAOSLINGR_AUTHORIZED_PORTS entries without a protocol prefix count for both.
  config_rule_tcp_ports = [for p in var.authorized_ports : trimprefix(p, "tcp:") if !startswith(p, "udp:")]
  config_rule_udp_ports = [for p in var.authorized_ports : trimprefix(p, "udp:") if !startswith(p, "tcp:")]
  config_rule_parameters = merge(
    length(local.config_rule_tcp_ports) > 0 ? { authorizedTcpPorts = join(",", local.config_rule_tcp_ports) } : {},
    length(local.config_rule_udp_ports) > 0 ? { authorizedUdpPorts = join(",", local.config_rule_udp_ports) } : {},
  )
}

# The AWS Config managed rule that flags security groups open to 0.0.0.0/0 (or ::/0) on
# ports other than the authorized ones: the control the default experiment measures.
# It needs a configuration recorder already recording AWS::EC2::SecurityGroup in this
# region; the module does not create one (an account has at most one per region).
resource "aws_config_config_rule" "open_ports" {
  count = var.create_config_rule ? 1 : 0

  name        = var.config_rule_name
  description = "Security groups may be open to 0.0.0.0/0 or ::/0 only on authorized ports (a ChaoSlingr detector)."

  source {
    owner             = "AWS"
    source_identifier = "VPC_SG_OPEN_ONLY_TO_AUTHORIZED_PORTS"
  }

  scope {
    compliance_resource_types = ["AWS::EC2::SecurityGroup"]
  }

  input_parameters = length(local.config_rule_parameters) > 0 ? jsonencode(local.config_rule_parameters) : null

  tags = var.tags
}

# Tells people when an experiment ends undetected: a security gap. It watches the
# results; it is not one of the detectors an experiment measures.
resource "aws_cloudwatch_metric_alarm" "undetected" {
  count = var.create_undetected_alarm ? 1 : 0

  alarm_name        = "${var.name}-undetected"
  alarm_description = "A ChaoSlingr experiment opened an unauthorized port and no configured control noticed it within the window. The outcome message on ${local.topic_arn} names the detectors that missed it."

  namespace   = var.namespace
  metric_name = "Undetected"
  dimensions = {
    Experiment = "port-change"
  }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"

  actions_enabled = true
  alarm_actions   = [local.topic_arn]

  tags = var.tags
}

# A message in the dead-letter queue is an invocation that failed for good. For the
# judge that can mean a revert that did not happen: look at it.
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  count = var.create_dlq_alarm ? 1 : 0

  alarm_name        = "${var.name}-dead-letters"
  alarm_description = "A ChaoSlingr function invocation failed after its retries and is in ${aws_sqs_queue.dead_letters.name}. Check `chaoslingr status` for experiments left open."

  namespace   = "AWS/SQS"
  metric_name = "ApproximateNumberOfMessagesVisible"
  dimensions = {
    QueueName = aws_sqs_queue.dead_letters.name
  }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"

  actions_enabled = true
  alarm_actions   = [local.topic_arn]

  tags = var.tags
}
