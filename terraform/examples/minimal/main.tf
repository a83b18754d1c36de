# The smallest deployment: the scheduled inject and judge functions with the module's
# defaults. Outcomes go to a new KMS-encrypted SNS topic (subscribe to it yourself), to
# the outcome archive in S3 (one object per experiment, kept 400 days), and the metrics
# to the ChaoSlingr dashboard. No detector is configured, so every experiment watches
# only for remediation; add detectors before drawing conclusions.
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
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

module "chaoslingr" {
  source = "../.."
}

output "topic_arn" {
  description = "Subscribe here (e-mail, chat) to see starts and outcomes."
  value       = module.chaoslingr.topic_arn
}

output "archive_url" {
  description = "The outcome archive: `chaoslingr report --archive <this>`."
  value       = module.chaoslingr.archive_url
}

output "dashboard_name" {
  description = "The CloudWatch dashboard with the results."
  value       = module.chaoslingr.dashboard_name
}
