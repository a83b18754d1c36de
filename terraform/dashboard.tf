# One dashboard for the results: per technique of var.experiments, outcomes over time and
# time-to-detect per detector; then revert failures and the health of the functions that
# produce them.

locals {
  outcome_metrics = ["Started", "Experiments", "Detected", "Remediated", "Prevented", "Undetected", "Aborted", "Failed"]

  # What each technique changes, for the headings of its rows.
  experiment_summaries = {
    "port-change" = "an ingress rule opening an unauthorized port on an opted-in security group"
    "nacl-entry"  = "an inbound ALLOW entry opening an unauthorized port range on an opted-in network ACL"
  }

  # One line per detector that ever reported for the technique, whatever detectors are
  # configured today (runs started by the CLI or with schedule overrides included).
  # Each line is labelled with its detector (a CloudWatch dynamic label, not Terraform
  # interpolation: hence the doubled dollar sign).
  detector_label        = "$${PROP('Dim.Detector')}"
  time_to_detect_search = "SEARCH('{\"${var.namespace}\",Detector,Experiment} MetricName=\"TimeToDetect\" Experiment=\"%s\"', '%s', 3600)"

  # Every technique of var.experiments gets the same block of rows, one below the other:
  # a heading, its totals, its outcomes over time and its time-to-detect.
  experiment_block_height = 17
  experiment_widgets = flatten([
    for i, experiment in var.experiments : [
      {
        type   = "text"
        x      = 0
        y      = 2 + i * local.experiment_block_height
        width  = 24
        height = 1
        properties = {
          markdown = "### ${experiment}: ${local.experiment_summaries[experiment]}"
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 3 + i * local.experiment_block_height
        width  = 24
        height = 4
        properties = {
          title                = "${experiment}: totals for the selected time range"
          view                 = "singleValue"
          region               = local.region
          stat                 = "Sum"
          period               = 3600
          setPeriodToTimeRange = true
          metrics = [
            for m in concat(local.outcome_metrics, ["RevertFailures"]) :
            [var.namespace, m, "Experiment", experiment, { label = m }]
          ]
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 7 + i * local.experiment_block_height
        width  = 24
        height = 6
        properties = {
          title   = "${experiment}: experiments by outcome"
          view    = "timeSeries"
          stacked = false
          region  = local.region
          stat    = "Sum"
          period  = 3600
          metrics = [
            for m in local.outcome_metrics :
            [var.namespace, m, "Experiment", experiment, { label = m }]
          ]
          yAxis = { left = { min = 0, label = "experiments per hour", showUnits = false } }
        }
      },
      [
        for j, stat in [{ id = "p50", name = "p50" }, { id = "p90", name = "p90" }, { id = "max", name = "Maximum" }] : {
          type   = "metric"
          x      = 8 * j
          y      = 13 + i * local.experiment_block_height
          width  = 8
          height = 6
          properties = {
            title   = "${experiment}: time to detect, ${stat.id} (seconds)"
            view    = "timeSeries"
            region  = local.region
            period  = 3600
            metrics = [[{ id = stat.id, expression = format(local.time_to_detect_search, experiment, stat.name), label = local.detector_label }]]
            yAxis   = { left = { min = 0, showUnits = false } }
          }
        }
      ],
    ]
  ])

  # Below the techniques' blocks: what needs a person's attention.
  health_y = 2 + length(var.experiments) * local.experiment_block_height

  dashboard_widgets = concat(
    [
      {
        type   = "text"
        x      = 0
        y      = 0
        width  = 24
        height = 2
        properties = {
          markdown = "## ChaoSlingr: ${join(", ", var.experiments)} experiments\nEach experiment makes one unauthorized change on a target its owners opted in and measures whether the controls notice. **Undetected** is a security gap found before an adversary found it. Revert failures mean a port may still be open: run `chaoslingr status`."
        }
      },
    ],
    local.experiment_widgets,
    [
      {
        type   = "metric"
        x      = 0
        y      = local.health_y
        width  = 12
        height = 6
        properties = {
          title  = "Revert failures (a port may still be open)"
          view   = "timeSeries"
          region = local.region
          stat   = "Sum"
          period = 300
          metrics = [
            for experiment in var.experiments :
            [var.namespace, "RevertFailures", "Experiment", experiment, { label = "${experiment} revert failures" }]
          ]
          yAxis = { left = { min = 0, showUnits = false } }
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = local.health_y
        width  = 12
        height = 6
        properties = {
          title  = "Function errors, throttles and dead letters"
          view   = "timeSeries"
          region = local.region
          stat   = "Sum"
          period = 300
          metrics = concat(
            [for k in keys(local.functions) : ["AWS/Lambda", "Errors", "FunctionName", local.function_names[k], { label = "${k} errors" }]],
            [for k in keys(local.functions) : ["AWS/Lambda", "Throttles", "FunctionName", local.function_names[k], { label = "${k} throttles" }]],
            [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.dead_letters.name, { stat = "Maximum", label = "dead letters" }]],
          )
          yAxis = { left = { min = 0, showUnits = false } }
        }
      },
    ],
    # Many accounts: the accounts and regions the functions could not work on.
    var.targets == null ? [] : [
      {
        type   = "metric"
        x      = 0
        y      = local.health_y + 6
        width  = 24
        height = 6
        properties = {
          title   = "Scope errors by account and region (the target role could not be assumed or used)"
          view    = "timeSeries"
          region  = local.region
          period  = 300
          metrics = [[{ id = "scope_errors", expression = "SEARCH('{\"${var.namespace}\",Account,Region} MetricName=\"ScopeErrors\"', 'Sum', 300)", label = "$${PROP('Dim.Account')} $${PROP('Dim.Region')}" }]]
          yAxis   = { left = { min = 0, showUnits = false } }
        }
      },
    ],
  )
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.create_dashboard ? 1 : 0

  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
