variable "hub_role_arns" {
  description = "The role ARNs that may assume the target role: the hub's inject and judge roles (the hub module's output target_role_trusted_principals), plus any operators' roles that run the chaoslingr CLI across accounts. The role trusts their accounts, limited to exactly these roles by aws:PrincipalArn."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.hub_role_arns) > 0
    error_message = "hub_role_arns must name at least one role (the hub's inject and judge roles)."
  }

  validation {
    condition     = alltrue([for a in var.hub_role_arns : can(regex("^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", a))])
    error_message = "Each of hub_role_arns must be an IAM role ARN (arn:<partition>:iam::<account>:role/<path><name>), without wildcards."
  }
}

variable "external_id" {
  description = "External id the hub passes when assuming the role (the hub module's targets.external_id): required by the trust policy (condition sts:ExternalId). null: no external id condition."
  type        = string
  default     = null

  validation {
    condition     = var.external_id == null || try(length(var.external_id) >= 2 && length(var.external_id) <= 1224 && can(regex("^[A-Za-z0-9+=,.@:/_-]+$", var.external_id)), false)
    error_message = "external_id must be 2-1224 characters of letters, digits and + = , . @ : / _ -."
  }
}

variable "organization_id" {
  description = "AWS Organizations id (o-...) the assuming role must belong to (condition aws:PrincipalOrgID), or null."
  type        = string
  default     = null

  validation {
    condition     = var.organization_id == null || can(regex("^o-[a-z0-9]{10,32}$", var.organization_id))
    error_message = "organization_id must be an AWS Organizations id such as o-a1b2c3d4e5."
  }
}

variable "role_name" {
  description = "Name of the target role; the hub module's targets.role_name must match."
  type        = string
  default     = "chaoslingr-target"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.role_name))
    error_message = "role_name must be 1-64 letters, digits and + = , . @ _ -."
  }
}

variable "role_path" {
  description = "Path of the target role, `/` or `/<segments>/`; the hub module's targets.role_path must match."
  type        = string
  default     = "/"
  nullable    = false

  validation {
    condition     = length(var.role_path) <= 512 && can(regex("^/([A-Za-z0-9+=,.@_-]+/)*$", var.role_path))
    error_message = "role_path must be \"/\" or \"/<segments>/\" of letters, digits and + = , . @ _ -, at most 512 characters."
  }
}

variable "opt_in_tag_key" {
  description = "Tag key that opts a security group or network ACL in; must match the hub module's opt_in_tag_key. The role may open changes only on targets carrying it."
  type        = string
  default     = "chaoslingr:opt-in"
  nullable    = false

  validation {
    condition     = length(var.opt_in_tag_key) >= 1 && length(var.opt_in_tag_key) <= 128 && !startswith(lower(var.opt_in_tag_key), "aws:")
    error_message = "The opt-in tag key must be 1-128 characters and must not start with \"aws:\"."
  }
}

variable "opt_in_tag_value" {
  description = "Tag value that opts a target in, compared case-insensitively; must match the hub module's opt_in_tag_value."
  type        = string
  default     = "true"
  nullable    = false

  validation {
    condition     = length(var.opt_in_tag_value) >= 1 && length(var.opt_in_tag_value) <= 256
    error_message = "The opt-in tag value must be 1-256 characters."
  }
}

variable "experiments" {
  description = "Techniques the hub may start in this account (port-change, nacl-entry), normally the hub module's experiments. Only these get the grants to open a change; finding, concluding and reverting are granted for every technique."
  type        = list(string)
  default     = ["port-change"]
  nullable    = false

  validation {
    condition     = length(var.experiments) > 0 && alltrue([for e in var.experiments : contains(["port-change", "nacl-entry"], e)])
    error_message = "experiments must name at least one of port-change, nacl-entry."
  }
}

variable "permissions_boundary_arn" {
  description = "ARN of a permissions boundary attached to the target role, or null. It must allow the actions of the role's policy (output policy_json)."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:[^:]+:iam::[0-9]{12}:policy/.+$", var.permissions_boundary_arn))
    error_message = "The permissions boundary must be an IAM policy ARN."
  }
}

variable "max_session_duration" {
  description = "Longest session of the role, in seconds (3600 to 43200). The functions ask for the default hour (and a fresh session every invocation); raise it only for operators' long CLI runs."
  type        = number
  default     = 3600
  nullable    = false

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200 && floor(var.max_session_duration) == var.max_session_duration
    error_message = "max_session_duration must be a whole number of seconds from 3600 to 43200."
  }
}

variable "tags" {
  description = "Tags added to the role."
  type        = map(string)
  default     = {}
  nullable    = false
}
