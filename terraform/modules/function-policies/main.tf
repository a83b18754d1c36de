# The identity policies of the functions (inject, judge, notify, and archive when there is
# an archive bucket) and the archive's reader policy, as plain data: every statement is
# built from the inputs with Terraform core, so `terraform output` renders exactly what
# the root module deploys (the detection lab enforces these documents in the end-to-end
# tests).

locals {
  ec2_arn_prefix          = "arn:${var.partition}:ec2:${var.region}:${var.account_id}"
  security_group_arns     = "${local.ec2_arn_prefix}:security-group/*"
  security_group_rule_arn = "${local.ec2_arn_prefix}:security-group-rule/*"
  network_acl_arns        = "${local.ec2_arn_prefix}:network-acl/*"
  alarm_arns              = "arn:${var.partition}:cloudwatch:${var.region}:${var.account_id}:alarm:*"
  security_hub_arn        = "arn:${var.partition}:securityhub:${var.region}:${var.account_id}:hub/default"

  # The outcome archive: the bucket, and the objects under its prefix. Nothing else in the
  # bucket is granted, to the function or to readers.
  archive_bucket_arn  = var.archive_bucket == null ? null : "arn:${var.partition}:s3:::${var.archive_bucket}"
  archive_objects_arn = var.archive_bucket == null ? null : "arn:${var.partition}:s3:::${var.archive_bucket}/${var.archive_prefix}outcomes/*"
  # S3 uses the bucket's key on the caller's behalf, and only for this region's S3.
  via_s3 = { StringEquals = { "kms:ViaService" = ["s3.${var.region}.amazonaws.com"] } }

  # inject may open only the changes of the techniques this deployment runs; reading,
  # marking what is already marked and reverting are granted for every technique, so an
  # experiment started by the CLI or before a technique was dropped is still closed.
  opens_port_change = contains(var.experiments, "port-change")
  opens_nacl_entry  = contains(var.experiments, "nacl-entry")

  # The target's owners opted in. IAM compares the whole value ignoring case only: "TRUE"
  # matches "true", "true " and "yes" do not.
  opted_in = {
    StringEqualsIgnoreCase = { "aws:ResourceTag/${var.opt_in_tag_key}" = [var.opt_in_tag_value] }
  }

  # The target (security group or network ACL) carries ChaoSlingr's marker: an experiment
  # was started on it.
  marked = {
    Null = { "aws:ResourceTag/${var.experiment_tag_key}" = ["false"] }
  }

  # Tag writes name only ChaoSlingr's own keys, never the opt-in key, and always name keys
  # (a DeleteTags without keys removes every tag).
  marker_keys_only = {
    "ForAllValues:StringLike"      = { "aws:TagKeys" = ["${var.marker_tag_prefix}*"] }
    "ForAllValues:StringNotEquals" = { "aws:TagKeys" = [var.opt_in_tag_key] }
    Null                           = { "aws:TagKeys" = ["false"] }
  }

  # Both: the target carries the marker, and the tag write names only ChaoSlingr's keys.
  marked_marker_keys_only = merge(local.marker_keys_only, { Null = merge(local.marker_keys_only.Null, local.marked.Null) })

  describe_groups = {
    Sid      = "DescribeSecurityGroups"
    Effect   = "Allow"
    Action   = ["ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules"]
    Resource = ["*"]
  }

  revoke_ingress_of_marked_groups = {
    Sid       = "RevokeIngressOfMarkedGroups"
    Effect    = "Allow"
    Action    = ["ec2:RevokeSecurityGroupIngress"]
    Resource  = [local.security_group_arns]
    Condition = local.marked
  }

  mark_opted_in_groups = {
    Sid       = "MarkOptedInGroups"
    Effect    = "Allow"
    Action    = ["ec2:CreateTags", "ec2:DeleteTags"]
    Resource  = [local.security_group_arns]
    Condition = merge(local.opted_in, local.marker_keys_only)
  }

  mark_marked_groups = {
    Sid       = "MarkMarkedGroups"
    Effect    = "Allow"
    Action    = ["ec2:CreateTags", "ec2:DeleteTags"]
    Resource  = [local.security_group_arns]
    Condition = local.marked_marker_keys_only
  }

  describe_network_acls = {
    Sid      = "DescribeNetworkAcls"
    Effect   = "Allow"
    Action   = ["ec2:DescribeNetworkAcls"]
    Resource = ["*"]
  }

  # A network ACL entry is no resource of its own and carries no tags: the experiment
  # record lives on the ACL, so the ACL's marker is what grants the revert.
  delete_entries_of_marked_network_acls = {
    Sid       = "DeleteEntriesOfMarkedNetworkAcls"
    Effect    = "Allow"
    Action    = ["ec2:DeleteNetworkAclEntry"]
    Resource  = [local.network_acl_arns]
    Condition = local.marked
  }

  mark_marked_network_acls = {
    Sid       = "MarkMarkedNetworkAcls"
    Effect    = "Allow"
    Action    = ["ec2:CreateTags", "ec2:DeleteTags"]
    Resource  = [local.network_acl_arns]
    Condition = local.marked_marker_keys_only
  }

  read_alarms = {
    Sid      = "ReadAlarms"
    Effect   = "Allow"
    Action   = ["cloudwatch:DescribeAlarms"]
    Resource = [local.alarm_arns]
  }

  # The compliance of the target, and whether the Config recorder records the
  # technique's resource type continuously at all (a config: detector that cannot see is
  # refused in pre-flight, or reported as "could not see"). None of these actions
  # supports resource-level permissions.
  read_config_compliance = {
    Sid    = "ReadConfigCompliance"
    Effect = "Allow"
    Action = [
      "config:GetComplianceDetailsByResource",
      "config:DescribeConfigurationRecorders",
      "config:DescribeConfigurationRecorderStatus",
    ]
    Resource = ["*"]
  }

  put_metrics_in_namespace = {
    Sid       = "PutMetricsInNamespace"
    Effect    = "Allow"
    Action    = ["cloudwatch:PutMetricData"]
    Resource  = ["*"]
    Condition = { StringEquals = { "cloudwatch:namespace" = [var.namespace] } }
  }

  # Before counting an outcome someone may already have counted (a judge or a person's
  # run that stopped between PutMetricData and its mark), and after a PutMetricData whose
  # answer was lost, the experiment's own `Recorded` datum is read back. No resource-level
  # permissions exist for this read.
  read_back_recorded_outcomes = {
    Sid      = "ReadBackRecordedOutcomes"
    Effect   = "Allow"
    Action   = ["cloudwatch:GetMetricStatistics"]
    Resource = ["*"]
  }

  publish_to_topic = {
    Sid      = "PublishToTopic"
    Effect   = "Allow"
    Action   = ["sns:Publish"]
    Resource = [var.topic_arn]
  }

  use_topic_key = var.topic_kms_key_arn == null ? [] : [{
    Sid       = "UseTopicKey"
    Effect    = "Allow"
    Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
    Resource  = [var.topic_kms_key_arn]
    Condition = { StringEquals = { "kms:ViaService" = ["sns.${var.region}.amazonaws.com"] } }
  }]

  # Used by AWS on the function's behalf: Lambda writes the logs, sends failed
  # asynchronous invocations to the dead-letter queue and sends traces with the role.
  # One per function given a log group.
  runtime = { for f in keys(var.log_group_arns) : f => concat(
    [
      {
        Sid      = "WriteOwnLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = ["${var.log_group_arns[f]}:*"]
      },
      {
        Sid      = "SendToDeadLetterQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [var.dead_letter_queue_arn]
      },
    ],
    # X-Ray does not support resource-level permissions.
    var.tracing_enabled ? [{
      Sid      = "WriteTraces"
      Effect   = "Allow"
      Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      Resource = ["*"]
    }] : [],
  ) }

  ##############################################################################
  # inject: pre-flight, plan, inject the tagged rule or the recorded ACL entry, mark the
  # target, announce
  ##############################################################################

  inject = {
    Version = "2012-10-17"
    Statement = concat(
      [
        # Listing groups by the opt-in tag (or by the marker's tag-key) and reading their
        # rules. These Describe calls do not support resource-level permissions.
        local.describe_groups,
      ],
      # Opening the experiment's port, and revoking it when racing starters step back:
      # on groups whose owners opted in.
      local.opens_port_change ? [{
        Sid       = "ChangeIngressOfOptedInGroups"
        Effect    = "Allow"
        Action    = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]
        Resource  = [local.security_group_arns]
        Condition = local.opted_in
      }] : [],
      # Revoking on a group that carries the marker even after its owners opted out:
      # opting out must never lock ChaoSlingr out of closing the port it opened. EC2
      # authorizes RevokeSecurityGroupIngress against the group's ARN only.
      [local.revoke_ingress_of_marked_groups],
      local.opens_port_change ? [
        # The rule AuthorizeSecurityGroupIngress creates must carry the experiment record
        # (tagged at creation); the group statement above limits where that rule can be.
        {
          Sid       = "CreateTaggedIngressRule"
          Effect    = "Allow"
          Action    = ["ec2:AuthorizeSecurityGroupIngress"]
          Resource  = [local.security_group_rule_arn]
          Condition = { Null = { "aws:RequestTag/${var.experiment_tag_key}" = ["false"] } }
        },
        # Rule tags are written as the rule is created, never afterwards.
        {
          Sid       = "TagRuleAtCreation"
          Effect    = "Allow"
          Action    = ["ec2:CreateTags"]
          Resource  = [local.security_group_rule_arn]
          Condition = { StringEquals = { "ec2:CreateAction" = ["AuthorizeSecurityGroupIngress"] } }
        },
        # The group marker, on opted-in groups ...
        local.mark_opted_in_groups,
      ] : [],
      # ... and on groups already carrying it.
      [local.mark_marked_groups],
      # Listing network ACLs by the opt-in tag (or by the marker's tag-key) and reading
      # their entries. DescribeNetworkAcls does not support resource-level permissions.
      [local.describe_network_acls],
      local.opens_nacl_entry ? [
        # The experiment record is written onto the ACL before its entry exists, so the
        # ACL is marked whenever an entry of ChaoSlingr's may be on it: only on ACLs whose
        # owners opted in, only ChaoSlingr's keys (never the opt-in key).
        {
          Sid       = "MarkOptedInNetworkAcls"
          Effect    = "Allow"
          Action    = ["ec2:CreateTags"]
          Resource  = [local.network_acl_arns]
          Condition = merge(local.opted_in, local.marker_keys_only)
        },
        # Adding the experiment's entry: on ACLs whose owners opted in. IAM cannot limit
        # the entry itself (direction, action, rule number, ports, CIDR); the function
        # adds only an inbound ALLOW it planned and recorded first.
        {
          Sid       = "AddEntriesToOptedInNetworkAcls"
          Effect    = "Allow"
          Action    = ["ec2:CreateNetworkAclEntry"]
          Resource  = [local.network_acl_arns]
          Condition = local.opted_in
        },
      ] : [],
      [
        # Deleting an experiment's entry on an ACL that carries the marker, even after its
        # owners opted out: opting out must never lock ChaoSlingr out of closing the port
        # it opened.
        local.delete_entries_of_marked_network_acls,
        # The marker and conclusion tags on ACLs already carrying the marker.
        local.mark_marked_network_acls,
        # Tells a preventive control's explicit deny (`prevented`) from a permission its
        # own role lacks (`failed`) by decoding EC2's authorization failure message.
        # The action does not support resource-level permissions.
        {
          Sid      = "DecodeAuthorizationFailures"
          Effect   = "Allow"
          Action   = ["sts:DecodeAuthorizationMessage"]
          Resource = ["*"]
        },
        local.read_alarms,
        # Granted always: the schedule's input can name config: detectors per run.
        local.read_config_compliance,
        local.put_metrics_in_namespace,
        local.read_back_recorded_outcomes,
        local.publish_to_topic,
      ],
      local.use_topic_key,
      local.runtime["inject"],
    )
  }

  ##############################################################################
  # judge: observe, conclude, revert, record; never opens a port
  ##############################################################################

  judge = {
    Version = "2012-10-17"
    Statement = concat(
      [
        local.describe_groups,
        # The revert. No AuthorizeSecurityGroupIngress: the judge cannot open a port.
        {
          Sid       = "RevokeIngressOfOptedInGroups"
          Effect    = "Allow"
          Action    = ["ec2:RevokeSecurityGroupIngress"]
          Resource  = [local.security_group_arns]
          Condition = local.opted_in
        },
        local.revoke_ingress_of_marked_groups,
        local.mark_opted_in_groups,
        local.mark_marked_groups,
        # Network ACL experiments are found, concluded and reverted whatever techniques
        # are scheduled (the CLI starts any). No CreateNetworkAclEntry: the judge cannot
        # add an entry.
        local.describe_network_acls,
        local.delete_entries_of_marked_network_acls,
        local.mark_marked_network_acls,
        local.read_alarms,
        # Granted always: the judge also concludes experiments started by the CLI, whose
        # detectors come from the rule's tags.
        local.read_config_compliance,
        {
          Sid      = "ReadSecurityHubFindings"
          Effect   = "Allow"
          Action   = ["securityhub:GetFindings"]
          Resource = [local.security_hub_arn]
        },
        local.put_metrics_in_namespace,
        local.read_back_recorded_outcomes,
        local.publish_to_topic,
      ],
      local.use_topic_key,
      local.runtime["judge"],
    )
  }

  ##############################################################################
  # notify: read the one webhook secret, post to Slack
  ##############################################################################

  notify = {
    Version = "2012-10-17"
    Statement = concat(
      var.webhook_parameter_arn == null ? [] : [{
        Sid      = "ReadWebhookParameter"
        Effect   = "Allow"
        Action   = ["ssm:GetParameter"]
        Resource = [var.webhook_parameter_arn]
      }],
      # A SecureString is decrypted by SSM with the parameter's key, on the caller's behalf.
      var.webhook_parameter_arn == null || var.webhook_parameter_kms_key_arn == null ? [] : [{
        Sid       = "DecryptWebhookParameter"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [var.webhook_parameter_kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = ["ssm.${var.region}.amazonaws.com"] } }
      }],
      var.webhook_secret_arn == null ? [] : [{
        Sid      = "ReadWebhookSecret"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = [var.webhook_secret_arn]
      }],
      var.webhook_secret_arn == null || var.webhook_secret_kms_key_arn == null ? [] : [{
        Sid       = "DecryptWebhookSecret"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [var.webhook_secret_kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = ["secretsmanager.${var.region}.amazonaws.com"] } }
      }],
      local.runtime["notify"],
    )
  }

  ##############################################################################
  # archive: write each outcome as one object under the archive's prefix
  ##############################################################################

  # PutObject only: no read, list or delete, so the function can add and overwrite
  # records but never read back or remove the archive. It sends no encryption headers;
  # the bucket's default encryption (SSE-KMS with the bucket key) asks KMS for a data key
  # on its behalf, which is all a single-part upload needs. Without its log group the
  # output's precondition says what is missing.
  archive = var.archive_bucket == null || !contains(keys(var.log_group_arns), "archive") ? null : {
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid      = "WriteOutcomeObjects"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = [local.archive_objects_arn]
      }],
      var.archive_kms_key_arn == null ? [] : [{
        Sid       = "EncryptOutcomeObjects"
        Effect    = "Allow"
        Action    = ["kms:GenerateDataKey"]
        Resource  = [var.archive_kms_key_arn]
        Condition = local.via_s3
      }],
      local.runtime["archive"],
    )
  }

  ##############################################################################
  # archive reader: for the people who run `chaoslingr report --archive`
  ##############################################################################

  # Listing and reading the outcomes, nothing else: listing is limited to keys under the
  # outcomes prefix (the caller must ask for that prefix), and there is no write or delete.
  archive_reader = var.archive_bucket == null ? null : {
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid       = "ListOutcomeObjects"
          Effect    = "Allow"
          Action    = ["s3:ListBucket"]
          Resource  = [local.archive_bucket_arn]
          Condition = { StringLike = { "s3:prefix" = ["${var.archive_prefix}outcomes/*"] } }
        },
        {
          Sid      = "ReadOutcomeObjects"
          Effect   = "Allow"
          Action   = ["s3:GetObject"]
          Resource = [local.archive_objects_arn]
        },
      ],
      var.archive_kms_key_arn == null ? [] : [{
        Sid       = "DecryptOutcomeObjects"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [var.archive_kms_key_arn]
        Condition = local.via_s3
      }],
    )
  }
}
