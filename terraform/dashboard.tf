# One dashboard for the results: outcomes over time, time-to-detect per detector, revert
# failures, and the health of the functions that produce them.

locals {
  experiment_dimension = ["Experiment", "port-change"]

  outcome_metrics = ["Started", "Experiments", "Detected", "Remediated", "Prevented", "Undetected", "Aborted", "Failed"]

  # One line per detector that ever reported, whatever detectors are configured today
  # (runs started by the CLI or with schedule overrides included).
  # Each line is labelled with its detector (a CloudWatch dynamic label, not Terraform
  # interpolation: hence the doubled dollar sign).
  detector_label        = "$${PROP('Dim.Detector')}"
  time_to_detect_search = "SEARCH('{\"${var.namespace}\",Detector,Experiment} MetricName=\"TimeToDetect\" Experiment=\"port-change\"', '%s', 3600)"

  dashboard_widgets = [
    {
      type   = "text"
      x      = 0
      y      = 0
      width  = 24
      height = 2
      properties = {
        markdown = "## ChaoSlingr: port-change experiments\nEach experiment opens an unauthorized port on an opted-in security group and measures whether the controls notice. **Undetected** is a security gap found before an adversary found it. Revert failures mean a port may still be open: run `chaoslingr status`."
      }
    },
    {
      type   = "metric"
      x      = 0
      y      = 2
      width  = 24
      height = 4
      properties = {
        title                = "Totals for the selected time range"
        view                 = "singleValue"
        region               = local.region
        stat                 = "Sum"
        period               = 3600
        setPeriodToTimeRange = true
        metrics = [
          for m in concat(local.outcome_metrics, ["RevertFailures"]) :
          concat([var.namespace, m], local.experiment_dimension, [{ label = m }])
        ]
      }
    },
    {
      type   = "metric"
      x      = 0
      y      = 6
      width  = 24
      height = 6
      properties = {
        title   = "Experiments by outcome"
        view    = "timeSeries"
        stacked = false
        region  = local.region
        stat    = "Sum"
        period  = 3600
        metrics = [
          for m in local.outcome_metrics :
          concat([var.namespace, m], local.experiment_dimension, [{ label = m }])
        ]
        yAxis = { left = { min = 0, label = "experiments per hour", showUnits = false } }
      }
    },
    {
      type   = "metric"
      x      = 0
      y      = 12
      width  = 8
      height = 6
      properties = {
        title   = "Time to detect, p50 (seconds)"
        view    = "timeSeries"
        region  = local.region
        period  = 3600
        metrics = [[{ id = "p50", expression = format(local.time_to_detect_search, "p50"), label = local.detector_label }]]
        yAxis   = { left = { min = 0, showUnits = false } }
      }
    },
    {
      type   = "metric"
      x      = 8
      y      = 12
      width  = 8
      height = 6
      properties = {
        title   = "Time to detect, p90 (seconds)"
        view    = "timeSeries"
        region  = local.region
        period  = 3600
        metrics = [[{ id = "p90", expression = format(local.time_to_detect_search, "p90"), label = local.detector_label }]]
        yAxis   = { left = { min = 0, showUnits = false } }
      }
    },
    {
      type   = "metric"
      x      = 16
      y      = 12
      width  = 8
      height = 6
      properties = {
        title   = "Time to detect, max (seconds)"
        view    = "timeSeries"
        region  = local.region
        period  = 3600
        metrics = [[{ id = "max", expression = format(local.time_to_detect_search, "Maximum"), label = local.detector_label }]]
        yAxis   = { left = { min = 0, showUnits = false } }
      }
    },
    {
      type   = "metric"
      x      = 0
      y      = 18
      width  = 12
      height = 6
      properties = {
        title   = "Revert failures (a port may still be open)"
        view    = "timeSeries"
        region  = local.region
        stat    = "Sum"
        period  = 300
        metrics = [concat([var.namespace, "RevertFailures"], local.experiment_dimension, [{ label = "RevertFailures", color = "#d62728" }])]
        yAxis   = { left = { min = 0, showUnits = false } }
      }
    },
    {
      type   = "metric"
      x      = 12
      y      = 18
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
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.create_dashboard ? 1 : 0

  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
