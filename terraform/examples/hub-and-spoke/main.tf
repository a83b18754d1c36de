# Many accounts and regions from one deployment. The hub (the account of the default
# provider) runs the functions, the topic, the metrics and the archive; each member
# account gets the small target role (modules/target-role) that the hub's inject and
# judge functions assume to experiment on its opted-in security groups, in the regions
# listed in `targets`. Here two member accounts, each deployed through its own aliased
# provider that assumes a deployment role there.
#
# For a whole organization, roll the target role out with the StackSet instead: see
# examples/organization-stackset.
#
# Build the functions first, from the repository root: infra/lambda.sh build

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.30, < 7.0"
    }
  }
}

# The hub: where the functions run.
provider "aws" {
  region = var.region
}

# Member account A, through the role Organizations creates in each new account (or your
# own deployment role).
provider "aws" {
  alias  = "member_a"
  region = var.region

  assume_role {
    role_arn     = "arn:aws:iam::${var.member_a_account_id}:role/${var.member_deploy_role_name}"
    session_name = "chaoslingr-target-role"
  }
}

# Member account B.
provider "aws" {
  alias  = "member_b"
  region = var.region

  assume_role {
    role_arn     = "arn:aws:iam::${var.member_b_account_id}:role/${var.member_deploy_role_name}"
    session_name = "chaoslingr-target-role"
  }
}

variable "region" {
  description = "Region of the hub deployment, and the default region experimented in."
  type        = string
  default     = "eu-west-1"
}

variable "member_a_account_id" {
  description = "Account ID of the first member account (experimented on in eu-west-1 and eu-central-1)."
  type        = string
}

variable "member_b_account_id" {
  description = "Account ID of the second member account (experimented on in the hub's region)."
  type        = string
}

variable "member_deploy_role_name" {
  description = "Role Terraform assumes in each member account to create the target role."
  type        = string
  default     = "OrganizationAccountAccessRole"
}

variable "external_id" {
  description = "External id the hub passes when assuming the target roles, and the target roles require. Not a secret, but unique to this deployment."
  type        = string
}

variable "operator_role_arns" {
  description = "Roles of people who run the chaoslingr CLI across the accounts (e.g. `chaoslingr status`, `chaoslingr revert --all`); trusted by the target roles too."
  type        = list(string)
  default     = []
}

module "chaoslingr" {
  source = "../.."

  experiments = ["port-change"]
  detectors   = ["securityhub"]

  targets = {
    accounts = [
      # Its own regions.
      { id = var.member_a_account_id, regions = ["eu-west-1", "eu-central-1"] },
      # The top-level regions.
      { id = var.member_b_account_id },
    ]
    regions     = [var.region]
    role_name   = "chaoslingr-target"
    external_id = var.external_id
  }

  # At most one active experiment per account (across its regions), two in all, and up
  # to eight account and region scopes worked on at once by each tick.
  max_active        = 1
  max_active_total  = 2
  scope_concurrency = 8
}

locals {
  # The principals the target roles trust: the hub's inject and judge roles, and the
  # operators' roles.
  trusted = concat(module.chaoslingr.target_role_trusted_principals, var.operator_role_arns)
}

module "target_member_a" {
  source    = "../../modules/target-role"
  providers = { aws = aws.member_a }

  hub_role_arns = local.trusted
  external_id   = var.external_id
  role_name     = "chaoslingr-target"
  experiments   = module.chaoslingr.experiments
}

module "target_member_b" {
  source    = "../../modules/target-role"
  providers = { aws = aws.member_b }

  hub_role_arns = local.trusted
  external_id   = var.external_id
  role_name     = "chaoslingr-target"
  experiments   = module.chaoslingr.experiments
}

output "inject_function_name" {
  description = "Invoke it by hand to start an experiment now."
  value       = module.chaoslingr.inject_function_name
}

output "target_role_arns" {
  description = "The roles the hub assumes, one per member account."
  value       = [module.target_member_a.role_arn, module.target_member_b.role_arn]
}

output "targets_json" {
  description = "CHAOSLINGR_TARGETS: export it to run the chaoslingr CLI over the same accounts."
  value       = module.chaoslingr.targets_json
}

output "topic_arn" {
  description = "Starts and outcomes of every account are published here."
  value       = module.chaoslingr.topic_arn
}

output "scope_errors_alarm_name" {
  description = "Alarms when an account and region could not be worked on."
  value       = module.chaoslingr.scope_errors_alarm_name
}

output "dashboard_name" {
  description = "The CloudWatch dashboard with the results, scope errors by account and region included."
  value       = module.chaoslingr.dashboard_name
}
