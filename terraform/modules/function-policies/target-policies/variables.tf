variable "partition" {
  description = "AWS partition of the account whose targets are experimented on (aws, aws-cn, aws-us-gov)."
  type        = string
  nullable    = false
}

variable "account_id" {
  description = "Account ID whose security groups, network ACLs and detectors the statements grant (12 digits)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
}

variable "region" {
  description = "Region in the statements' resource ARNs: the functions' region for a single-account deployment, `*` for a target role that serves every region of its account."
  type        = string
  default     = "*"
  nullable    = false

  validation {
    condition     = var.region == "*" || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$", var.region))
    error_message = "region must be a region name such as us-east-1, or \"*\"."
  }
}

variable "opt_in_tag_key" {
  description = "Tag key a security group or network ACL carries when its owners opted in to experiments."
  type        = string
  nullable    = false
}

variable "opt_in_tag_value" {
  description = "Value of the opt-in tag that means opted in (compared ignoring case only)."
  type        = string
  nullable    = false
}

variable "marker_tag_prefix" {
  description = "Prefix of every tag key ChaoSlingr writes on rules, groups and network ACLs."
  type        = string
  default     = "chaoslingr:"
  nullable    = false
}

variable "experiment_tag_key" {
  description = "Tag key naming the experiment, on the rule ChaoSlingr creates and on the target it marks."
  type        = string
  default     = "chaoslingr:experiment-id"
  nullable    = false
}

variable "experiments" {
  description = "Techniques that may be started (port-change, nacl-entry). Only these get inject's grants to open a change; reading, writing the marker of already marked targets and reverting are granted for every technique."
  type        = list(string)
  nullable    = false

  validation {
    condition     = alltrue([for e in var.experiments : contains(["port-change", "nacl-entry"], e)])
    error_message = "Each experiment must be one of port-change, nacl-entry."
  }
}

variable "hub_role_arns" {
  description = "For the trust policy of a target role: the role ARNs that may assume it (the hub's inject and judge roles, operators' roles). Empty: no trust policy (output trust_policy is null)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for a in var.hub_role_arns : can(regex("^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", a))])
    error_message = "Each of hub_role_arns must be an IAM role ARN (arn:<partition>:iam::<account>:role/<path><name>), without wildcards."
  }
}

variable "external_id" {
  description = "For the trust policy: the external id the hub passes when assuming the role (condition sts:ExternalId), or null."
  type        = string
  default     = null
}

variable "organization_id" {
  description = "For the trust policy: the AWS Organizations id the assuming principal must belong to (condition aws:PrincipalOrgID), or null."
  type        = string
  default     = null
}
