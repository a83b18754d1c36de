################################################################################
# General
################################################################################

variable "name" {
  description = "Prefix of every resource name (functions, roles, log groups, topic, queue, schedules, alarms, dashboard)."
  type        = string
  default     = "chaoslingr"

  validation {
    # The longest derived name, "<name>-scheduler" / "<name>-dead-letters", must stay inside
    # the 64-character limits of IAM role and Lambda function names.
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", var.name))
    error_message = "The name must be 1-40 characters of letters, digits, '-' and '_', starting with a letter or digit."
  }
}

variable "tags" {
  description = "Tags added to every resource that supports them."
  type        = map(string)
  default     = {}
}

variable "enabled" {
  description = "The kill switch. false disables the inject schedule and sets CHAOSLINGR_ENABLED=false in the functions, so no experiment starts (not even one started by hand or already queued). Nothing is destroyed. See keep_judge_running."
  type        = bool
  default     = true
}

variable "keep_judge_running" {
  description = "With enabled = false, keep the judge schedule running so experiments already in flight are still concluded and reverted (the judge never opens a port). false disables the judge schedule too: every schedule stops, and in-flight experiments must be reverted by hand (`chaoslingr revert --all`)."
  type        = bool
  default     = true
}

################################################################################
# Packaging and runtime
################################################################################

variable "inject_zip_path" {
  description = "Path of the inject function's zip built by `infra/lambda.sh build`. null means `<repository>/target/lambda/inject/bootstrap.zip`, relative to this module."
  type        = string
  default     = null
}

variable "judge_zip_path" {
  description = "Path of the judge function's zip. null means `<repository>/target/lambda/judge/bootstrap.zip`, relative to this module."
  type        = string
  default     = null
}

variable "notify_zip_path" {
  description = "Path of the notify function's zip. null means `<repository>/target/lambda/notify/bootstrap.zip`, relative to this module."
  type        = string
  default     = null
}

variable "archive_zip_path" {
  description = "Path of the archive function's zip. null means `<repository>/target/lambda/archive/bootstrap.zip`, relative to this module."
  type        = string
  default     = null
}

variable "architecture" {
  description = "Instruction set the zips were built for: `arm64` (the default of `infra/lambda.sh build`) or `x86_64` (built with CHAOSLINGR_LAMBDA_ARCH=x86-64)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "The architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "memory_size" {
  description = "Memory of each function, in MB."
  type        = number
  default     = 256

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240 && floor(var.memory_size) == var.memory_size
    error_message = "The memory size must be a whole number of MB from 128 to 10240."
  }
}

variable "inject_timeout" {
  description = "Timeout of the inject function, in seconds. It does not wait for detection (the judge does), so a minute is plenty."
  type        = number
  default     = 60

  validation {
    condition     = var.inject_timeout >= 10 && var.inject_timeout <= 900
    error_message = "The inject timeout must be from 10 to 900 seconds."
  }
}

variable "judge_timeout" {
  description = "Timeout of the judge function, in seconds. One tick observes every active experiment; keep it at most the judge's schedule period. With `targets`, keep the default 60 or more: a tick gives every account and region up to 30 s to revert, then up to 25 s to judge."
  type        = number
  default     = 60

  validation {
    condition     = var.judge_timeout >= 10 && var.judge_timeout <= 900
    error_message = "The judge timeout must be from 10 to 900 seconds."
  }
}

variable "notify_timeout" {
  description = "Timeout of the notify function, in seconds."
  type        = number
  default     = 30

  validation {
    condition     = var.notify_timeout >= 3 && var.notify_timeout <= 900
    error_message = "The notify timeout must be from 3 to 900 seconds."
  }
}

variable "notify_reserved_concurrency" {
  description = "Reserved concurrency of the notify function (inject and judge always have 1). It caps the rate of Slack posts; throttled SNS deliveries are retried by Lambda."
  type        = number
  default     = 2

  validation {
    condition     = var.notify_reserved_concurrency >= 1 && var.notify_reserved_concurrency <= 100 && floor(var.notify_reserved_concurrency) == var.notify_reserved_concurrency
    error_message = "The notify reserved concurrency must be a whole number from 1 to 100."
  }
}

variable "archive_timeout" {
  description = "Timeout of the archive function, in seconds. It writes one object per outcome."
  type        = number
  default     = 30

  validation {
    condition     = var.archive_timeout >= 3 && var.archive_timeout <= 900
    error_message = "The archive timeout must be from 3 to 900 seconds."
  }
}

variable "archive_reserved_concurrency" {
  description = "Reserved concurrency of the archive function. Outcomes are rare (one per experiment), so a small number is plenty; throttled SNS deliveries are retried by Lambda for up to six hours."
  type        = number
  default     = 2

  validation {
    condition     = var.archive_reserved_concurrency >= 1 && var.archive_reserved_concurrency <= 100 && floor(var.archive_reserved_concurrency) == var.archive_reserved_concurrency
    error_message = "The archive reserved concurrency must be a whole number from 1 to 100."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups, in days (0 keeps logs forever)."
  type        = number
  default     = 365

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log retention must be one of the values CloudWatch Logs accepts: 0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "log_level" {
  description = "Application log level of the functions (Lambda's advanced logging controls, read by the runtime as AWS_LAMBDA_LOG_LEVEL)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.log_level)
    error_message = "The log level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL."
  }
}

variable "tracing_enabled" {
  description = "Active X-Ray tracing for the functions. false sets tracing to PassThrough and drops the X-Ray permissions from the roles."
  type        = bool
  default     = true
}

variable "create_kms_key" {
  description = "Create a customer managed KMS key (with rotation) for the created SNS topic, the log groups and the outcome archive. false uses kms_key_arn instead."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "ARN of an existing customer managed KMS key for the created SNS topic, the log groups and the outcome archive; required when create_kms_key is false. Its policy must let CloudWatch Logs (`logs.<region>.amazonaws.com`) and, for the module's alarms, CloudWatch (`cloudwatch.amazonaws.com`) use it, and let IAM policies of the account grant its use (the archive function and the archive's readers get theirs that way)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:[^:]+:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "The KMS key must be given by its key ARN (arn:<partition>:kms:<region>:<account>:key/<id>), not an alias."
  }
}

variable "permissions_boundary_arn" {
  description = "ARN of a permissions boundary attached to every role the module creates, or null."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:[^:]+:iam::[0-9]{12}:policy/.+$", var.permissions_boundary_arn))
    error_message = "The permissions boundary must be an IAM policy ARN."
  }
}

################################################################################
# Schedules
################################################################################

variable "schedule_timezone" {
  description = "IANA time zone of both schedule expressions, e.g. `Europe/Berlin`. CHAOSLINGR_ALLOWED_HOURS is always UTC."
  type        = string
  default     = "UTC"

  validation {
    condition     = length(trimspace(var.schedule_timezone)) > 0
    error_message = "The schedule time zone must not be empty (use \"UTC\")."
  }
}

variable "inject_schedule" {
  description = "EventBridge Scheduler expression that starts experiments. The default is hourly from 10:00 to 16:00 on weekdays, in `schedule_timezone`, when people are around to react."
  type        = string
  default     = "cron(0 10-16 ? * MON-FRI *)"

  validation {
    condition     = can(regex("^(cron|rate)\\(.+\\)$", var.inject_schedule))
    error_message = "The inject schedule must be a cron(...) or rate(...) expression."
  }
}

variable "judge_schedule" {
  description = "EventBridge Scheduler expression of the judge, the durable timer and safety net. Every minute by default; a longer period delays conclusions and reverts by as much."
  type        = string
  default     = "rate(1 minute)"

  validation {
    condition     = can(regex("^(cron|rate)\\(.+\\)$", var.judge_schedule))
    error_message = "The judge schedule must be a cron(...) or rate(...) expression."
  }
}

variable "experiments" {
  description = "Techniques the schedule runs: `port-change` (an ingress rule on an opted-in security group), `nacl-entry` (an inbound ALLOW entry on an opted-in network ACL); non-empty, no duplicates. The scheduled event carries the list as `experiment`, and inject picks one at random per run. Only for these does the inject role get the grants to open a change; every technique's experiments are still concluded and reverted."
  type        = list(string)
  default     = ["port-change"]
  nullable    = false

  validation {
    condition     = length(var.experiments) > 0
    error_message = "experiments must name at least one technique; to stop experiments, set enabled = false."
  }

  validation {
    condition     = alltrue([for e in var.experiments : contains(["port-change", "nacl-entry"], e)])
    error_message = "Each of experiments must be \"port-change\" or \"nacl-entry\"."
  }

  validation {
    condition     = length(distinct(var.experiments)) == length(var.experiments)
    error_message = "experiments must not name a technique twice (the inject function picks uniformly among the list)."
  }
}

variable "inject_input" {
  description = "Overrides sent by the inject schedule in its event: `target` (a security group id `sg-...` for port-change, or a network ACL id `acl-...` for nacl-entry, whose technique must be in experiments), `detectors`, `window`, `dry_run`. Unset fields use the functions' environment."
  type = object({
    target    = optional(string)
    detectors = optional(list(string))
    window    = optional(string)
    dry_run   = optional(bool)
  })
  default = {}

  validation {
    condition     = var.inject_input.target == null || can(regex("^(sg|acl)-[0-9a-f]+$", var.inject_input.target))
    error_message = "inject_input.target must be a security group id such as sg-0123456789abcdef0 or a network ACL id such as acl-0123456789abcdef0."
  }

  validation {
    condition     = var.inject_input.detectors == null || alltrue([for d in coalesce(var.inject_input.detectors, []) : can(regex("^(config:[^,\\s][^,]*|alarm:[^,\\s][^,]*|securityhub(:[^,\\s][^,]*)?)$", d))])
    error_message = "inject_input.detectors must be config:<rule-name>, alarm:<alarm-name>, securityhub or securityhub:<generator-id>."
  }

  validation {
    condition     = var.inject_input.window == null || can(regex("^([0-9]+(s|m|h))+$", var.inject_input.window))
    error_message = "inject_input.window must be a duration such as 90s, 15m, 1h or 1h30m."
  }
}

################################################################################
# Experiment settings (CHAOSLINGR_* of inject and judge)
################################################################################

variable "opt_in_tag_key" {
  description = "CHAOSLINGR_OPT_IN_TAG: tag key that opts a security group or network ACL in. The roles may open changes only on targets carrying it."
  type        = string
  default     = "chaoslingr:opt-in"

  validation {
    condition     = length(var.opt_in_tag_key) >= 1 && length(var.opt_in_tag_key) <= 128 && !startswith(lower(var.opt_in_tag_key), "aws:")
    error_message = "The opt-in tag key must be 1-128 characters and must not start with \"aws:\"."
  }
}

variable "opt_in_tag_value" {
  description = "CHAOSLINGR_OPT_IN_VALUE: tag value that opts a target in, compared case-insensitively."
  type        = string
  default     = "true"

  validation {
    condition     = length(var.opt_in_tag_value) >= 1 && length(var.opt_in_tag_value) <= 256
    error_message = "The opt-in tag value must be 1-256 characters."
  }
}

variable "detectors" {
  description = "CHAOSLINGR_DETECTORS: the controls every experiment measures, e.g. [\"config:vpc-sg-open-only-to-authorized-ports\", \"alarm:firewall-new-open-port\", \"securityhub\"]. With create_config_rule and add_config_rule_to_detectors the module's Config rule is added."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for d in var.detectors : can(regex("^(config:[^,\\s][^,]*|alarm:[^,\\s][^,]*|securityhub(:[^,\\s][^,]*)?)$", d))])
    error_message = "Each detector must be config:<rule-name>, alarm:<alarm-name>, securityhub or securityhub:<generator-id>, without commas."
  }
}

variable "window" {
  description = "CHAOSLINGR_WINDOW: how long detectors have to notice, 10s to 24h, e.g. 15m or 1h30m. null uses the functions' default (15m)."
  type        = string
  default     = null

  validation {
    condition     = var.window == null || can(regex("^([0-9]+(s|m|h))+$", var.window))
    error_message = "The window must be a duration such as 90s, 15m, 1h or 1h30m."
  }
}

variable "poll_interval" {
  description = "CHAOSLINGR_POLL_INTERVAL: observation cadence of watching runs, 1s to 5m. null uses the default (15s)."
  type        = string
  default     = null

  validation {
    condition     = var.poll_interval == null || can(regex("^([0-9]+(s|m))+$", var.poll_interval))
    error_message = "The poll interval must be a duration such as 5s, 30s or 1m."
  }
}

variable "port_range" {
  description = "CHAOSLINGR_PORT_RANGE: bounds of injected ports, FROM-TO. null uses the default (10000-65000)."
  type        = string
  default     = null

  validation {
    condition = var.port_range == null || (
      can(regex("^[0-9]{1,5}-[0-9]{1,5}$", var.port_range)) &&
      try(tonumber(split("-", var.port_range)[0]) >= 1 && tonumber(split("-", var.port_range)[0]) <= tonumber(split("-", var.port_range)[1]) && tonumber(split("-", var.port_range)[1]) <= 65535, false)
    )
    error_message = "The port range must be FROM-TO with 1 <= FROM <= TO <= 65535, e.g. 10000-65000."
  }
}

variable "max_ports" {
  description = "CHAOSLINGR_MAX_PORTS: widest injected range, 1 to 1000 ports. null uses the default (6)."
  type        = number
  default     = null

  validation {
    condition     = var.max_ports == null || try(var.max_ports >= 1 && var.max_ports <= 1000 && floor(var.max_ports) == var.max_ports, false)
    error_message = "max_ports must be a whole number from 1 to 1000."
  }
}

variable "protocols" {
  description = "CHAOSLINGR_PROTOCOLS: protocols to inject, [\"tcp\"], [\"udp\"] or both. Empty uses the default (tcp and udp)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.protocols : contains(["tcp", "udp"], p)])
    error_message = "Each protocol must be \"tcp\" or \"udp\"."
  }
}

variable "cidr" {
  description = "CHAOSLINGR_CIDR: source of the injected rule, IPv4 or IPv6. null uses the default (0.0.0.0/0). The module's Config rule only flags rules open to 0.0.0.0/0 or ::/0."
  type        = string
  default     = null

  validation {
    condition     = var.cidr == null || can(cidrhost(var.cidr, 0))
    error_message = "The CIDR must be an IPv4 or IPv6 CIDR block such as 0.0.0.0/0 or ::/0."
  }
}

variable "authorized_ports" {
  description = "CHAOSLINGR_AUTHORIZED_PORTS: ports never injected, each `[tcp:|udp:]PORT[-PORT]` (no prefix means both), e.g. [\"tcp:22\", \"tcp:443\", \"udp:53\", \"8000-8080\"]. Also the authorized ports of the module's Config rule."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.authorized_ports : can(regex("^((tcp|udp):)?[0-9]{1,5}(-[0-9]{1,5})?$", p))])
    error_message = "Each authorized port must be [tcp:|udp:]PORT or [tcp:|udp:]FROM-TO, e.g. tcp:22, udp:53 or 8000-8080."
  }
}

variable "namespace" {
  description = "CHAOSLINGR_NAMESPACE: CloudWatch namespace of the metrics. The roles may put metrics only into it; the dashboard and alarm read it."
  type        = string
  default     = "ChaoSlingr"

  validation {
    condition     = length(var.namespace) >= 1 && length(var.namespace) <= 255 && !startswith(var.namespace, "AWS/")
    error_message = "The namespace must be 1-255 characters and must not start with \"AWS/\"."
  }
}

variable "max_active" {
  description = "CHAOSLINGR_MAX_ACTIVE: most experiments active at once per target account, across its regions (a single-account deployment: in its account), 1 to 100. See max_active_total for the limit across every account."
  type        = number
  default     = 1

  validation {
    condition     = var.max_active >= 1 && var.max_active <= 100 && floor(var.max_active) == var.max_active
    error_message = "max_active must be a whole number from 1 to 100."
  }
}

variable "max_active_total" {
  description = "CHAOSLINGR_MAX_ACTIVE_TOTAL: most experiments active at once across every target account and region, 1 to 1000. null uses the functions' default (5)."
  type        = number
  default     = null

  validation {
    condition     = var.max_active_total == null || try(var.max_active_total >= 1 && var.max_active_total <= 1000 && floor(var.max_active_total) == var.max_active_total, false)
    error_message = "max_active_total must be a whole number from 1 to 1000."
  }
}

variable "dry_run" {
  description = "CHAOSLINGR_DRY_RUN: plan and ask EC2 (DryRun) whether the change would be allowed, never open a port."
  type        = bool
  default     = false
}

variable "stop_alarms" {
  description = "CHAOSLINGR_STOP_ALARMS: CloudWatch alarm names that block new experiments while in ALARM (e.g. an incident or on-call alarm)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.stop_alarms : length(a) >= 1 && length(a) <= 255 && !strcontains(a, ",")])
    error_message = "Each stop alarm must be an alarm name of 1-255 characters without commas."
  }
}

variable "allowed_hours" {
  description = "CHAOSLINGR_ALLOWED_HOURS: when experiments may start, in UTC, `[DAYS ]HH:MM-HH:MM`, e.g. `mon-fri 09:00-17:00`. A second guard beside the schedule. null allows any time."
  type        = string
  default     = null

  validation {
    condition     = var.allowed_hours == null || can(regex("^(?i)((mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?(,(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?)* )?[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$", var.allowed_hours))
    error_message = "allowed_hours must be [DAYS ]HH:MM-HH:MM in UTC, e.g. \"mon-fri 09:00-17:00\" or \"sat,sun 10:00-12:00\"."
  }
}

################################################################################
# Notifications
################################################################################

variable "create_topic" {
  description = "Create the SNS topic for starts and outcomes, encrypted with the module's KMS key. false uses existing_topic_arn instead."
  type        = bool
  default     = true
}

variable "existing_topic_arn" {
  description = "ARN of an existing SNS topic for starts and outcomes; required when create_topic is false."
  type        = string
  default     = null

  validation {
    condition     = var.existing_topic_arn == null || can(regex("^arn:[^:]+:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$", var.existing_topic_arn))
    error_message = "The existing topic must be given by its SNS topic ARN (a standard topic, not FIFO)."
  }
}

variable "existing_topic_kms_key_arn" {
  description = "ARN of the customer managed KMS key of existing_topic_arn, so the functions may publish to it. null when that topic is unencrypted or uses the AWS managed key `alias/aws/sns`. Ignored when create_topic is true."
  type        = string
  default     = null

  validation {
    condition     = var.existing_topic_kms_key_arn == null || can(regex("^arn:[^:]+:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.existing_topic_kms_key_arn))
    error_message = "The topic's KMS key must be given by its key ARN, not an alias."
  }
}

variable "slack_webhook_ssm_parameter" {
  description = "Name (or ARN) of an existing SSM SecureString parameter holding the Slack incoming-webhook URL. Setting it (or slack_webhook_secret_arn, not both) creates the notify function. The URL itself never passes through Terraform."
  type        = string
  default     = null

  validation {
    condition     = var.slack_webhook_ssm_parameter == null || can(regex("^(arn:[^:]+:ssm:[a-z0-9-]+:[0-9]{12}:parameter/[A-Za-z0-9_./-]+|/?[A-Za-z0-9_.-][A-Za-z0-9_./-]*)$", var.slack_webhook_ssm_parameter))
    error_message = "The SSM parameter must be a parameter name such as /chaoslingr/slack-webhook, or its ARN, and never the webhook URL itself."
  }
}

variable "slack_webhook_secret_arn" {
  description = "Full ARN (with the 6-character suffix) of an existing Secrets Manager secret whose string is the Slack webhook URL, or JSON with `url` or `webhook_url`. Setting it (or slack_webhook_ssm_parameter, not both) creates the notify function."
  type        = string
  default     = null

  validation {
    condition     = var.slack_webhook_secret_arn == null || can(regex("^arn:[^:]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+-[A-Za-z0-9]{6}$", var.slack_webhook_secret_arn))
    error_message = "The secret must be given by its full ARN, ending in -XXXXXX (the suffix Secrets Manager adds)."
  }
}

variable "slack_webhook_kms_key_arn" {
  description = "ARN of the customer managed KMS key encrypting the webhook parameter or secret. null means the AWS managed key: for SSM the key behind `alias/aws/ssm` (looked up), for Secrets Manager no KMS statement (its managed key needs none)."
  type        = string
  default     = null

  validation {
    condition     = var.slack_webhook_kms_key_arn == null || can(regex("^arn:[^:]+:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.slack_webhook_kms_key_arn))
    error_message = "The webhook's KMS key must be given by its key ARN, not an alias."
  }
}

################################################################################
# Outcome archive
################################################################################

variable "archive_outcomes" {
  description = "Keep every outcome published on the topic as one object in an S3 bucket the module creates (encrypted, versioned, lifecycle-limited), written by the archive function. Read it with `chaoslingr report --archive <archive_url>`."
  type        = bool
  default     = true
  nullable    = false
}

variable "archive_bucket_name" {
  description = "Name of the archive bucket. null generates a unique name starting with `<name>-outcomes-` (lowercase, `_` as `-`, the name cut to 27 characters)."
  type        = string
  default     = null

  validation {
    condition     = var.archive_bucket_name == null || try(can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.archive_bucket_name)) && !strcontains(var.archive_bucket_name, ".."), false)
    error_message = "The archive bucket name must be a valid S3 bucket name: 3-63 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit."
  }
}

variable "archive_prefix" {
  description = "Key prefix of the archive in its bucket: outcomes are written to `<archive_prefix>outcomes/v1/YYYY/MM/DD/<experiment_id>.json`. Empty, or ending with `/`; never starting with `/`."
  type        = string
  default     = "chaoslingr/"
  nullable    = false

  validation {
    condition     = var.archive_prefix == "" || (endswith(var.archive_prefix, "/") && !startswith(var.archive_prefix, "/") && !strcontains(var.archive_prefix, "//") && length(var.archive_prefix) <= 512 && !can(regex("[*?$]", var.archive_prefix)))
    error_message = "The archive prefix must be empty, or end with \"/\" (e.g. \"chaoslingr/\"), without a leading \"/\", an empty segment (\"//\") or a wildcard or policy variable character (*, ?, $), which would widen the functions' and readers' grants."
  }
}

variable "archive_retention_days" {
  description = "How long each outcome object is kept, in days, before the bucket's lifecycle rule expires it (800 by default: `chaoslingr report --since 365d` compares a year with the year before, which needs two years). Overwritten or expired versions are removed 30 days later."
  type        = number
  default     = 800
  nullable    = false

  validation {
    condition     = var.archive_retention_days >= 1 && floor(var.archive_retention_days) == var.archive_retention_days
    error_message = "The archive retention must be a whole number of days, at least 1."
  }
}

################################################################################
# Detectors, alarms and dashboard
################################################################################

variable "create_config_rule" {
  description = "Create the AWS Config managed rule VPC_SG_OPEN_ONLY_TO_AUTHORIZED_PORTS as a detector. Requires a configuration recorder already recording AWS::EC2::SecurityGroup in the region."
  type        = bool
  default     = false
}

variable "config_rule_name" {
  description = "Name of the Config rule created by create_config_rule. Must not collide with an existing rule (e.g. one from a conformance pack or Security Hub)."
  type        = string
  default     = "vpc-sg-open-only-to-authorized-ports"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,128}$", var.config_rule_name))
    error_message = "The Config rule name must be 1-128 letters, digits, '-' or '_'."
  }
}

variable "add_config_rule_to_detectors" {
  description = "When create_config_rule is true, add `config:<config_rule_name>` to the detectors (unless already listed)."
  type        = bool
  default     = true
}

variable "create_nacl_change_alarm" {
  description = "When nacl-entry is in experiments, create the CIS control for network ACL changes as a detector: a metric filter on cloudtrail_log_group_name (CreateNetworkAcl, CreateNetworkAclEntry, DeleteNetworkAcl, DeleteNetworkAclEntry, ReplaceNetworkAclEntry, ReplaceNetworkAclAssociation) and the alarm `<name>-network-acl-changes` on it. Requires a CloudTrail trail delivering this region's management events to that log group."
  type        = bool
  default     = false
  nullable    = false
}

variable "cloudtrail_log_group_name" {
  description = "Name of the CloudWatch Logs group (in this region) a CloudTrail trail delivers management events to; required when create_nacl_change_alarm is true."
  type        = string
  default     = null

  validation {
    condition     = var.cloudtrail_log_group_name == null || can(regex("^[A-Za-z0-9_./#-]{1,512}$", var.cloudtrail_log_group_name))
    error_message = "The CloudTrail log group name must be 1-512 letters, digits, '_', '-', '/', '.' or '#' (a name, not an ARN)."
  }
}

variable "add_nacl_change_alarm_to_detectors" {
  description = "When the network ACL alarm is created, add `alarm:<name>-network-acl-changes` to the detectors (unless already listed)."
  type        = bool
  default     = true
  nullable    = false
}

variable "create_undetected_alarm" {
  description = "Create a CloudWatch alarm that notifies the topic when an experiment of a scheduled technique ends undetected (metric Undetected, summed over the experiments' Experiment dimensions, >= 1 over 5 minutes). It is an alert on results, not a detector."
  type        = bool
  default     = true
}

variable "create_dlq_alarm" {
  description = "Create a CloudWatch alarm that notifies the topic when a failed invocation lands in the dead-letter queue."
  type        = bool
  default     = true
}

variable "create_dashboard" {
  description = "Create the CloudWatch dashboard (per scheduled technique: outcomes over time and time-to-detect per detector; revert failures, function health)."
  type        = bool
  default     = true
}

################################################################################
# Many accounts and regions (hub and spoke)
################################################################################

variable "targets" {
  description = "CHAOSLINGR_TARGETS: experiment on the opted-in targets of other accounts and regions from this (hub) deployment. `accounts`: each account id, with its own `regions` (empty: the top-level `regions`); `regions`: the default regions (empty: the functions' own region); `role_name` / `role_path`: the role inject and judge assume in each account (modules/target-role, default chaoslingr-target at /); `external_id`: passed when assuming it, if the roles require one. Then inject and judge hold sts:AssumeRole on exactly those roles and no EC2 or detector permission of their own; metrics and SNS stay in this account. null (the default): this account and region only, with the functions' own roles."
  type = object({
    accounts = list(object({
      id      = string
      regions = optional(list(string), [])
    }))
    regions     = optional(list(string), [])
    role_name   = optional(string, "chaoslingr-target")
    role_path   = optional(string, "/")
    external_id = optional(string)
  })
  default = null

  validation {
    condition     = var.targets == null ? true : length(var.targets.accounts) > 0
    error_message = "targets.accounts must list at least one account; for a single account, leave targets null."
  }

  validation {
    condition     = var.targets == null ? true : alltrue([for a in var.targets.accounts : can(regex("^[0-9]{12}$", a.id))])
    error_message = "Each of targets.accounts must have an id of 12 digits."
  }

  validation {
    condition     = var.targets == null ? true : length(distinct([for a in var.targets.accounts : a.id])) == length(var.targets.accounts)
    error_message = "targets.accounts must not list an account twice; give it all its regions in one entry."
  }

  validation {
    condition = var.targets == null ? true : alltrue([
      for r in concat(var.targets.regions, flatten([for a in var.targets.accounts : a.regions])) :
      can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$", r))
    ])
    error_message = "Each region of targets (top-level or per account) must be a region name such as us-east-1 or eu-west-1."
  }

  validation {
    condition = var.targets == null ? true : alltrue([
      for regions in concat([var.targets.regions], [for a in var.targets.accounts : a.regions]) :
      length(distinct(regions)) == length(regions)
    ])
    error_message = "A regions list of targets must not name a region twice."
  }

  validation {
    condition     = var.targets == null ? true : can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.targets.role_name))
    error_message = "targets.role_name must be an IAM role name: 1-64 letters, digits and + = , . @ _ -."
  }

  validation {
    condition     = var.targets == null ? true : length(var.targets.role_path) <= 512 && can(regex("^/([A-Za-z0-9+=,.@_-]+/)*$", var.targets.role_path))
    error_message = "targets.role_path must be \"/\" or \"/<segments>/\" of letters, digits and + = , . @ _ -."
  }

  validation {
    condition     = var.targets == null ? true : var.targets.external_id == null || try(length(var.targets.external_id) >= 2 && length(var.targets.external_id) <= 1224 && can(regex("^[A-Za-z0-9+=,.@:/_-]+$", var.targets.external_id)), false)
    error_message = "targets.external_id must be 2-1224 characters of letters, digits and + = , . @ : / _ -."
  }
}

variable "scope_concurrency" {
  description = "CHAOSLINGR_SCOPE_CONCURRENCY: how many account and region scopes of targets one tick of inject or judge works on at once, 1 to 64. null uses the functions' default (8)."
  type        = number
  default     = null

  validation {
    condition     = var.scope_concurrency == null || try(var.scope_concurrency >= 1 && var.scope_concurrency <= 64 && floor(var.scope_concurrency) == var.scope_concurrency, false)
    error_message = "scope_concurrency must be a whole number from 1 to 64."
  }
}

variable "create_scope_errors_alarm" {
  description = "With targets: create the CloudWatch alarm `<name>-scope-errors`, notifying the topic when the functions could not work on an account and region (metric ScopeErrors, any Account and Region, Sum >= 1 over 5 minutes): a missing or broken target role also means experiments there cannot be reverted by the judge."
  type        = bool
  default     = true
  nullable    = false
}
