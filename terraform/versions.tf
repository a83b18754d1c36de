terraform {
  # 1.5 or later: the module uses optional object attributes, `startswith` and lifecycle
  # preconditions, and is tested with this floor in mind.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.30 or later for `logging_config` (JSON logs) on aws_lambda_function. Below 7.0
      # because the module reads `data.aws_region.current.name`, deprecated in 6.x.
      version = ">= 5.30, < 7.0"
    }
  }
}
