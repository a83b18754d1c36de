# EventBridge Scheduler starts experiments (inject) and runs the durable timer (judge).
#
# The kill switch (var.enabled = false) disables the inject schedule and sets
# CHAOSLINGR_ENABLED=false, without destroying anything. The judge schedule keeps running
# unless keep_judge_running is false: the judge never opens a port, and disabling it would
# leave the port of an experiment already in flight open until someone reverts it by hand.

locals {
  inject_schedule_state = var.enabled ? "ENABLED" : "DISABLED"
  judge_schedule_state  = (var.enabled || var.keep_judge_running) ? "ENABLED" : "DISABLED"

  # The technique a fixed target belongs to, by the prefix of its id.
  inject_target_experiment = var.inject_input.target == null ? null : (
    startswith(var.inject_input.target, "acl-") ? "nacl-entry" : "port-change"
  )

  # The techniques to pick from, then only the overrides the caller set; the inject
  # function refuses unknown fields.
  inject_input = merge(
    { experiment = var.experiments },
    var.inject_input.target != null ? { target = var.inject_input.target } : {},
    var.inject_input.detectors != null ? { detectors = var.inject_input.detectors } : {},
    var.inject_input.window != null ? { window = var.inject_input.window } : {},
    var.inject_input.dry_run != null ? { dry_run = var.inject_input.dry_run } : {},
  )
}

resource "aws_scheduler_schedule" "inject" {
  #checkov:skip=CKV_AWS_297:The schedule stores only a non-secret target input (the techniques to pick from and run overrides); EventBridge Scheduler's AWS owned key protects it, and a CMK would protect nothing more.
  name        = "${var.name}-inject"
  description = "ChaoSlingr: start one experiment (${join(" or ", var.experiments)})"
  state       = local.inject_schedule_state

  schedule_expression          = var.inject_schedule
  schedule_expression_timezone = var.schedule_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.function["inject"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode(local.inject_input)

    # A missed start is not retried: the next scheduled run is the retry, and a start
    # long after its slot could land outside the hours people expect.
    retry_policy {
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = 300
    }
  }

  lifecycle {
    # A fixed target must belong to a scheduled technique: inject may not open the other.
    precondition {
      condition     = local.inject_target_experiment == null || contains(var.experiments, coalesce(local.inject_target_experiment, "-"))
      error_message = "inject_input.target ${coalesce(var.inject_input.target, "-")} is a ${coalesce(local.inject_target_experiment, "-")} target; add \"${coalesce(local.inject_target_experiment, "-")}\" to experiments."
    }
  }
}

resource "aws_scheduler_schedule" "judge" {
  #checkov:skip=CKV_AWS_297:The schedule stores only an empty target input; EventBridge Scheduler's AWS owned key protects it, and a CMK would protect nothing more.
  name        = "${var.name}-judge"
  description = "ChaoSlingr: conclude and revert active experiments (durable timer and safety net)"
  state       = local.judge_schedule_state

  schedule_expression          = var.judge_schedule
  schedule_expression_timezone = var.schedule_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.function["judge"].arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({})

    # The next tick is the retry.
    retry_policy {
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = 60
    }
  }
}
