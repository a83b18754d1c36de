# The role the hub's inject and judge functions assume in a member account. It grants
# exactly the target-side statements of their single-account policies (the union of the
# two), built by the same provider-free module (../function-policies/target-policies)
# for this account and every region (`*`): listing opted-in and marked security groups
# and network ACLs, opening a change only on opted-in targets, reverting on opted-in or
# marked ones (revert authority outlives opt-in), writing only ChaoSlingr's tags, and
# reading the detectors (alarms, AWS Config, Security Hub). Metrics, SNS, logs and the
# dead-letter queue stay in the hub with the functions' own roles.
#
# The same role for whole organizations: stackset.yaml beside this file (a CloudFormation
# StackSet template, checked against this module by `infra/terraform.sh check`).

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

module "policies" {
  source = "../function-policies/target-policies"

  partition        = data.aws_partition.current.partition
  account_id       = data.aws_caller_identity.current.account_id
  region           = "*"
  opt_in_tag_key   = var.opt_in_tag_key
  opt_in_tag_value = var.opt_in_tag_value
  experiments      = var.experiments
  hub_role_arns    = var.hub_role_arns
  external_id      = var.external_id
  organization_id  = var.organization_id
}

resource "aws_iam_role" "target" {
  name                 = var.role_name
  path                 = var.role_path
  description          = "ChaoSlingr target role: the hub's inject and judge functions experiment on opted-in security groups and network ACLs of this account with it"
  assume_role_policy   = module.policies.trust_policy
  permissions_boundary = var.permissions_boundary_arn
  max_session_duration = var.max_session_duration

  tags = var.tags
}

resource "aws_iam_role_policy" "target" {
  name   = var.role_name
  role   = aws_iam_role.target.id
  policy = module.policies.policy
}
