# A customer managed key for the topic, the log groups and the outcome archive, unless the
# caller brings one.
# Customer managed rather than the AWS managed alias/aws/sns key because CloudWatch
# alarms cannot publish to a topic encrypted with an AWS managed key, and the module's
# alarms notify the topic.

resource "aws_kms_key" "this" {
  count = var.create_kms_key ? 1 : 0

  description             = "ChaoSlingr (${var.name}): SNS topic, Lambda log groups and outcome archive"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = local.kms_key_policy

  tags = var.tags
}

resource "aws_kms_alias" "this" {
  count = var.create_kms_key ? 1 : 0

  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this[0].key_id
}

# The key policy, a resource policy: its "*" resource means this key and nothing else.
locals {
  kms_key_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # The account administers the key, and IAM policies in the account decide who
        # else may use it (the inject and judge roles get GenerateDataKey and Decrypt that
        # way, the archive role GenerateDataKey through S3, the archive's readers Decrypt
        # through S3). Explicit actions instead of kms:*.
        Sid       = "AccountAdministersKey"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action = [
          "kms:CancelKeyDeletion",
          "kms:CreateAlias",
          "kms:CreateGrant",
          "kms:Decrypt",
          "kms:DeleteAlias",
          "kms:DescribeKey",
          "kms:DisableKey",
          "kms:DisableKeyRotation",
          "kms:EnableKey",
          "kms:EnableKeyRotation",
          "kms:Encrypt",
          "kms:GenerateDataKey",
          "kms:GenerateDataKeyWithoutPlaintext",
          "kms:GetKeyPolicy",
          "kms:GetKeyRotationStatus",
          "kms:ListAliases",
          "kms:ListGrants",
          "kms:ListKeyPolicies",
          "kms:ListKeyRotations",
          "kms:ListResourceTags",
          "kms:PutKeyPolicy",
          "kms:ReEncryptFrom",
          "kms:ReEncryptTo",
          "kms:RetireGrant",
          "kms:RevokeGrant",
          "kms:RotateKeyOnDemand",
          "kms:ScheduleKeyDeletion",
          "kms:TagResource",
          "kms:UntagResource",
          "kms:UpdateAlias",
          "kms:UpdateKeyDescription",
        ]
        Resource = "*"
      },
      {
        # CloudWatch Logs encrypts the functions' log groups, and only those.
        Sid       = "CloudWatchLogsEncryptsFunctionLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action = [
          "kms:Decrypt",
          "kms:DescribeKey",
          "kms:Encrypt",
          "kms:GenerateDataKey",
          "kms:GenerateDataKeyWithoutPlaintext",
          "kms:ReEncryptFrom",
          "kms:ReEncryptTo",
        ]
        Resource = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/lambda/${var.name}-*"
          }
        }
      },
      {
        # The module's CloudWatch alarms publish to the encrypted topic: only alarms of
        # this account named after the module (confused deputy).
        Sid       = "CloudWatchAlarmsPublishToTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action = [
          "kms:Decrypt",
          "kms:GenerateDataKey",
        ]
        Resource = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          ArnLike      = { "aws:SourceArn" = "${local.alarm_arn_prefix}:alarm:${var.name}-*" }
        }
      },
    ]
  })
}
