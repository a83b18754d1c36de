output "role_arn" {
  description = "ARN of the target role (what the hub assumes: arn:<partition>:iam::<account>:role<role_path><role_name>)."
  value       = aws_iam_role.target.arn
}

output "role_name" {
  description = "Name of the target role."
  value       = aws_iam_role.target.name
}

output "policy_json" {
  description = "The target role's permission policy, as JSON."
  value       = module.policies.policy
}

output "trust_policy_json" {
  description = "The target role's trust policy, as JSON."
  value       = module.policies.trust_policy
}
