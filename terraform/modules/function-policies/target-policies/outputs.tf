output "inject_statements" {
  description = "inject's target-side statements (security groups, network ACLs, detectors), in policy order."
  value       = local.inject
}

output "judge_statements" {
  description = "judge's target-side statements (security groups, network ACLs, detectors), in policy order."
  value       = local.judge
}

output "policy" {
  description = "The target role's permission policy, as JSON: inject's target-side statements, then judge's that inject does not have."
  value       = jsonencode(local.target_role)
}

output "trust_policy" {
  description = "The target role's trust policy, as JSON: the accounts of hub_role_arns, limited to those roles by aws:PrincipalArn, with sts:ExternalId and aws:PrincipalOrgID when given; null when hub_role_arns is empty."
  value       = local.trust_policy == null ? null : jsonencode(local.trust_policy)
}
