# The outcome archive: every outcome published on the topic, kept as one object per
# experiment in a bucket of its own, written by the archive function subscribed to the
# topic. Why S3 with one object per experiment, and not Firehose: an SNS redelivery writes
# the same key again (deduplicated for free), an auditor fetches one experiment's record
# by its key, `chaoslingr report --archive` lists by date prefix, Athena can query it, and
# the lifecycle rule bounds retention. Firehose would batch records into files, not
# deduplicate them, and cost more.
#
# Layout: <archive_prefix>outcomes/v1/YYYY/MM/DD/<experiment_id>.json, schema
# chaoslingr.outcome/v1. The function sends no encryption headers: the bucket's default
# encryption applies to every object.

resource "aws_s3_bucket" "archive" {
  count = var.archive_outcomes ? 1 : 0
  #checkov:skip=CKV_AWS_18:Server access logs would need a second bucket for a handful of writes a day; CloudTrail data events are the place to audit object access if required.
  #checkov:skip=CKV_AWS_144:Outcome records are reproducible history, not primary data; cross-region replication would double the buckets, keys and cost for no recovery need.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to new objects: the topic already carries every outcome to its subscribers.

  # A generated name: "<name>-outcomes-" plus a unique suffix. Bucket names are lowercase
  # without underscores, and a prefix may be at most 37 characters.
  bucket        = var.archive_bucket_name
  bucket_prefix = var.archive_bucket_name == null ? "${substr(replace(lower(var.name), "_", "-"), 0, 27)}-outcomes-" : null

  tags = var.tags
}

resource "aws_s3_bucket_public_access_block" "archive" {
  count = var.archive_outcomes ? 1 : 0

  bucket                  = aws_s3_bucket.archive[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: the bucket owner owns every object, and access is decided by policies alone.
resource "aws_s3_bucket_ownership_controls" "archive" {
  count = var.archive_outcomes ? 1 : 0

  bucket = aws_s3_bucket.archive[0].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# Default encryption: the module's KMS key when it has one (the key that already protects
# the topic and the logs, so reading the archive is granted like reading them), else S3
# managed keys. The bucket key cuts the KMS calls to one per bucket key, not per object;
# it applies to SSE-KMS only.
resource "aws_s3_bucket_server_side_encryption_configuration" "archive" {
  count = var.archive_outcomes ? 1 : 0

  bucket = aws_s3_bucket.archive[0].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.archive_uses_kms ? "aws:kms" : "AES256"
      kms_master_key_id = local.archive_kms_key_arn
    }
    bucket_key_enabled = local.archive_uses_kms
  }
}

# Versioning keeps what a redelivery or a mistaken overwrite replaced, for the 30 days
# the lifecycle rule keeps noncurrent versions.
resource "aws_s3_bucket_versioning" "archive" {
  count = var.archive_outcomes ? 1 : 0

  bucket = aws_s3_bucket.archive[0].id

  versioning_configuration {
    status = "Enabled"
  }
}

# Bounded retention: outcomes expire after archive_retention_days (S3 then removes the
# delete markers left once no version remains), replaced versions 30 days after they were
# replaced, and unfinished multipart uploads after 7 days.
resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  count = var.archive_outcomes ? 1 : 0

  bucket = aws_s3_bucket.archive[0].id

  rule {
    id     = "retention"
    status = "Enabled"

    # The whole bucket. An empty prefix rather than `filter {}`, which AWS provider
    # versions from 5.90 warn about.
    filter {
      prefix = ""
    }

    expiration {
      days = var.archive_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Lifecycle rules on versions need versioning configured first.
  depends_on = [aws_s3_bucket_versioning.archive]
}

# TLS only: any request over plain HTTP is refused, whoever makes it.
data "aws_iam_policy_document" "archive_bucket" {
  count = var.archive_outcomes ? 1 : 0

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.archive[0].arn, "${aws_s3_bucket.archive[0].arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "archive" {
  count = var.archive_outcomes ? 1 : 0

  bucket = aws_s3_bucket.archive[0].id
  policy = data.aws_iam_policy_document.archive_bucket[0].json

  # S3 refuses concurrent changes of a bucket's access settings.
  depends_on = [aws_s3_bucket_public_access_block.archive]
}

# The archive receives every outcome (outcome messages carry the `outcome` attribute;
# starts and alarm notifications do not), including the quiet ones: a scheduled run that
# aborted in pre-flight (kill switch on, outside the allowed hours, maximum active
# reached) is published with `quiet = "true"`, kept here and never shown in Slack (see the
# notifier's filter in notifications.tf).
resource "aws_sns_topic_subscription" "archive" {
  count = var.archive_outcomes ? 1 : 0

  topic_arn = local.topic_arn
  protocol  = "lambda"
  endpoint  = aws_lambda_function.function["archive"].arn

  filter_policy_scope = "MessageAttributes"
  filter_policy = jsonencode({
    outcome = [{ exists = true }]
  })
}

resource "aws_lambda_permission" "archive_from_topic" {
  count = var.archive_outcomes ? 1 : 0

  statement_id  = "AllowInvokeFromChaoSlingrTopic"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["archive"].function_name
  principal     = "sns.amazonaws.com"
  source_arn    = local.topic_arn
}
