# One account, one region: the inject and judge functions experiment on the opted-in
# security groups of the account and region they are deployed in, with their own roles.
# This is the module's default (targets = null); examples/minimal is the same deployment
# with every default, examples/complete adds every feature. For many accounts and regions
# from one deployment see examples/hub-and-spoke.
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

provider "aws" {
  region = var.region
}

variable "region" {
  description = "AWS region to deploy to, and to experiment in."
  type        = string
  default     = "eu-west-1"
}

module "chaoslingr" {
  source = "../.."

  # No `targets`: this account and region only. inject and judge hold the EC2 and
  # detector permissions themselves (tag-conditioned, see the module's README, IAM).
  experiments = ["port-change"]
  detectors   = ["securityhub"]

  # At most one experiment at a time in the account.
  max_active = 1
}

output "inject_function_name" {
  description = "Invoke it by hand to start an experiment now."
  value       = module.chaoslingr.inject_function_name
}

output "topic_arn" {
  description = "Subscribe here (e-mail, chat) to see starts and outcomes."
  value       = module.chaoslingr.topic_arn
}

output "dashboard_name" {
  description = "The CloudWatch dashboard with the results."
  value       = module.chaoslingr.dashboard_name
}
