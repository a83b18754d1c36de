# Many accounts of an organization from one (hub) deployment, with the target role rolled
# out by a CloudFormation StackSet (modules/target-role/stackset.yaml): service-managed
# permissions, deployed to organizational units, and deployed automatically to every
# account that joins them later. The hub experiments on the active accounts of the same
# organizational units, listed through AWS Organizations at plan time.
#
# Two providers: the hub (where the functions run) and the StackSet administrator, the
# organization's management account or a delegated administrator for StackSets. See
# README.md beside this file for the one-time setup.
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

# The StackSet administrator: the management account, or a member account registered as
# a delegated administrator for CloudFormation StackSets (then call_as = DELEGATED_ADMIN).
provider "aws" {
  alias  = "stackset_admin"
  region = var.region

  assume_role {
    role_arn     = var.stackset_admin_role_arn
    session_name = "chaoslingr-stackset"
  }
}

variable "region" {
  description = "Region of the hub deployment and of the StackSet (its stack instances are deployed to this one region only: IAM is global)."
  type        = string
  default     = "eu-west-1"
}

variable "target_regions" {
  description = "Regions experimented in, in every target account."
  type        = list(string)
  default     = ["eu-west-1", "eu-central-1"]
}

variable "stackset_admin_role_arn" {
  description = "Role Terraform assumes in the management account or the StackSets delegated administrator account."
  type        = string
}

variable "call_as" {
  description = "SELF when stackset_admin_role_arn is in the management account, DELEGATED_ADMIN when in a delegated administrator account."
  type        = string
  default     = "DELEGATED_ADMIN"

  validation {
    condition     = contains(["SELF", "DELEGATED_ADMIN"], var.call_as)
    error_message = "call_as must be SELF or DELEGATED_ADMIN."
  }
}

variable "organizational_unit_ids" {
  description = "Organizational units whose accounts (their descendants included) get the target role and are experimented on, e.g. [\"ou-ab12-cdefgh34\"]."
  type        = list(string)
}

variable "external_id" {
  description = "External id the hub passes when assuming the target roles, and the target roles require. Not a secret, but unique to this deployment."
  type        = string
}

variable "operator_role_arns" {
  description = "Roles of people who run the chaoslingr CLI across the accounts; trusted by the target roles too."
  type        = list(string)
  default     = []
}

data "aws_caller_identity" "hub" {}

data "aws_organizations_organization" "this" {
  provider = aws.stackset_admin
}

# The accounts below the organizational units (at any depth), read at plan time: the hub
# lists them in its targets. The StackSet reaches accounts that join later by itself; the
# hub experiments on them from its next apply.
data "aws_organizations_organizational_unit_descendant_accounts" "targets" {
  for_each = toset(var.organizational_unit_ids)
  provider = aws.stackset_admin

  parent_id = each.key
}

locals {
  target_accounts = sort(distinct(flatten([
    for ou in data.aws_organizations_organizational_unit_descendant_accounts.targets :
    [for a in ou.accounts : a.id if a.status == "ACTIVE"]
  ])))

  # The principals the target roles trust: the hub's inject and judge roles, and the
  # operators' roles, with their accounts.
  trusted          = concat(module.chaoslingr.target_role_trusted_principals, var.operator_role_arns)
  trusted_accounts = distinct([for arn in local.trusted : split(":", arn)[4]])
}

module "chaoslingr" {
  source = "../.."

  experiments = ["port-change"]
  detectors   = ["securityhub"]

  targets = {
    accounts    = [for id in local.target_accounts : { id = id }]
    regions     = var.target_regions
    role_name   = "chaoslingr-target"
    external_id = var.external_id
  }

  max_active        = 1
  max_active_total  = 10
  scope_concurrency = 16
}

# The target role in every account of the organizational units, now and later.
resource "aws_cloudformation_stack_set" "target_role" {
  provider = aws.stackset_admin

  name             = "chaoslingr-target-role"
  description      = "ChaoSlingr target role: the hub's inject and judge functions experiment on opted-in targets of the account with it"
  permission_model = "SERVICE_MANAGED"
  call_as          = var.call_as
  capabilities     = ["CAPABILITY_NAMED_IAM"]
  template_body    = file("${path.module}/../../modules/target-role/stackset.yaml")

  parameters = {
    HubRoleArns    = join(",", local.trusted)
    HubAccountIds  = join(",", local.trusted_accounts)
    ExternalId     = var.external_id
    OrganizationId = data.aws_organizations_organization.this.id
    RoleName       = "chaoslingr-target"
    Experiments    = join(",", module.chaoslingr.experiments)
  }

  # New accounts in the organizational units get the role; an account leaving them loses
  # it.
  auto_deployment {
    enabled                          = true
    retain_stacks_on_account_removal = false
  }

  managed_execution {
    active = true
  }

  operation_preferences {
    max_concurrent_percentage    = 25
    failure_tolerance_percentage = 10
    region_concurrency_type      = "PARALLEL"
  }

  lifecycle {
    # Set by AWS for service-managed StackSets.
    ignore_changes = [administration_role_arn]
  }
}

# Stack instances: the organizational units, in ONE region (the role is global).
resource "aws_cloudformation_stack_set_instance" "target_role" {
  provider = aws.stackset_admin

  stack_set_name = aws_cloudformation_stack_set.target_role.name
  call_as        = var.call_as
  region         = var.region

  deployment_targets {
    organizational_unit_ids = var.organizational_unit_ids
  }

  operation_preferences {
    max_concurrent_percentage    = 25
    failure_tolerance_percentage = 10
  }
}

output "target_accounts" {
  description = "The accounts the hub experiments on (active accounts of the organizational units)."
  value       = local.target_accounts
}

output "target_role_arns" {
  description = "The roles the hub assumes, one per account."
  value       = module.chaoslingr.target_role_arns
}

output "stack_set_name" {
  description = "The StackSet that rolls the target role out."
  value       = aws_cloudformation_stack_set.target_role.name
}

output "targets_json" {
  description = "CHAOSLINGR_TARGETS: export it to run the chaoslingr CLI over the same accounts."
  value       = module.chaoslingr.targets_json
}

output "scope_errors_alarm_name" {
  description = "Alarms when an account and region could not be worked on (e.g. an account whose stack instance failed)."
  value       = module.chaoslingr.scope_errors_alarm_name
}
