variable "partition" {
  description = "AWS partition of the account the functions run in (aws, aws-cn, aws-us-gov)."
  type        = string
  nullable    = false
}

variable "region" {
  description = "Region the functions run in and experiment on, e.g. us-east-1."
  type        = string
  nullable    = false
}

variable "account_id" {
  description = "Account ID the functions run in and experiment on (12 digits)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
}

variable "opt_in_tag_key" {
  description = "Tag key a security group carries when its owners opted in to experiments."
  type        = string
  nullable    = false
}

variable "opt_in_tag_value" {
  description = "Value of the opt-in tag that means opted in (compared ignoring case only)."
  type        = string
  nullable    = false
}

variable "marker_tag_prefix" {
  description = "Prefix of every tag key ChaoSlingr writes on rules and groups."
  type        = string
  default     = "chaoslingr:"
  nullable    = false
}

variable "experiment_tag_key" {
  description = "Tag key naming the experiment, on the rule ChaoSlingr creates and on the group it marks."
  type        = string
  default     = "chaoslingr:experiment-id"
  nullable    = false
}

variable "namespace" {
  description = "CloudWatch namespace the functions put their metrics in."
  type        = string
  nullable    = false
}

variable "topic_arn" {
  description = "ARN of the SNS topic inject and judge publish starts and outcomes to."
  type        = string
  default     = null
}

variable "topic_kms_key_arn" {
  description = "Customer managed KMS key of the topic, or null when it has none."
  type        = string
  default     = null
}

variable "webhook_parameter_arn" {
  description = "ARN of the SSM parameter holding the Slack webhook URL, or null."
  type        = string
  default     = null
}

variable "webhook_parameter_kms_key_arn" {
  description = "KMS key SSM decrypts the webhook parameter with, or null."
  type        = string
  default     = null
}

variable "webhook_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the Slack webhook URL, or null."
  type        = string
  default     = null
}

variable "webhook_secret_kms_key_arn" {
  description = "KMS key Secrets Manager decrypts the webhook secret with, or null."
  type        = string
  default     = null
}

variable "log_group_arns" {
  description = "ARN of each function's log group, by function (inject, judge, notify; archive too when archive_bucket is set)."
  type        = map(string)
  nullable    = false

  validation {
    condition     = alltrue([for f in ["inject", "judge", "notify"] : contains(keys(var.log_group_arns), f)])
    error_message = "log_group_arns needs an entry for inject, judge and notify."
  }
}

variable "archive_bucket" {
  description = "Name of the outcome archive's bucket, or null when outcomes are not archived (then the archive and archive_reader outputs are null)."
  type        = string
  default     = null
}

variable "archive_prefix" {
  description = "Key prefix of the archive in its bucket (empty, or ending with /); outcomes are written under <archive_prefix>outcomes/."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.archive_prefix == "" || (endswith(var.archive_prefix, "/") && !startswith(var.archive_prefix, "/") && !can(regex("[*?$]", var.archive_prefix)))
    error_message = "archive_prefix must be empty or end with \"/\", without a leading \"/\" or a wildcard or policy variable character (*, ?, $)."
  }
}

variable "archive_kms_key_arn" {
  description = "Customer managed KMS key of the archive bucket's default encryption (SSE-KMS), or null when it uses S3 managed keys."
  type        = string
  default     = null
}

variable "dead_letter_queue_arn" {
  description = "ARN of the SQS queue that receives failed asynchronous invocations."
  type        = string
  nullable    = false
}

variable "tracing_enabled" {
  description = "Whether the functions send X-Ray traces."
  type        = bool
  default     = false
  nullable    = false
}

variable "experiments" {
  description = "Techniques inject may start (port-change, nacl-entry). Only these get inject's grants to open a change; reading, writing the marker of already marked targets and reverting are granted for every technique."
  type        = list(string)
  nullable    = false

  validation {
    condition     = alltrue([for e in var.experiments : contains(["port-change", "nacl-entry"], e)])
    error_message = "Each experiment must be one of port-change, nacl-entry."
  }
}

variable "target_role_arns" {
  description = "Many accounts: the ARNs of the target roles (modules/target-role) inject and judge assume in the member accounts. Then their policies hold sts:AssumeRole on exactly these roles instead of the target-side statements, which the target roles grant. null: a single account, the functions act on their own account's targets with their own roles."
  type        = list(string)
  default     = null

  validation {
    condition     = var.target_role_arns == null || try(length(var.target_role_arns) > 0 && alltrue([for a in var.target_role_arns : can(regex("^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", a))]), false)
    error_message = "target_role_arns must be null or a non-empty list of IAM role ARNs without wildcards."
  }
}
