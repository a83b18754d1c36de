# The target-side statements of the inject and judge policies: everything that reads or
# changes the targets (security groups, network ACLs) and reads the detectors (alarms,
# AWS Config, Security Hub) of one account. Defined once, used twice:
#
# - by the parent module (function-policies) for a single-account deployment, with the
#   functions' own account and region, inside the inject and judge policies;
# - for a target role in a member account (modules/target-role, and the lab's render in
#   infra/terraform.sh), with that account and region `*`: the union of inject's and
#   judge's statements, which the hub's functions use through sts:AssumeRole.
#
# infra/terraform.sh check compares the CloudFormation StackSet template of the target
# role (modules/target-role/stackset.yaml) with the `policy` and `trust_policy` rendered
# here; change both together.

locals {
  ec2_arn_prefix          = "arn:${var.partition}:ec2:${var.region}:${var.account_id}"
  security_group_arns     = "${local.ec2_arn_prefix}:security-group/*"
  security_group_rule_arn = "${local.ec2_arn_prefix}:security-group-rule/*"
  network_acl_arns        = "${local.ec2_arn_prefix}:network-acl/*"
  alarm_arns              = "arn:${var.partition}:cloudwatch:${var.region}:${var.account_id}:alarm:*"
  security_hub_arn        = "arn:${var.partition}:securityhub:${var.region}:${var.account_id}:hub/default"

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

  ##############################################################################
  # inject: plan, inject the tagged rule or the recorded ACL entry, mark the target
  ##############################################################################

  inject = concat(
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
      # own role lacks (`failed`) by decoding EC2's authorization failure message, in
      # the account that refused. The action does not support resource-level
      # permissions.
      {
        Sid      = "DecodeAuthorizationFailures"
        Effect   = "Allow"
        Action   = ["sts:DecodeAuthorizationMessage"]
        Resource = ["*"]
      },
      local.read_alarms,
      # Granted always: the schedule's input can name config: detectors per run.
      local.read_config_compliance,
    ],
  )

  ##############################################################################
  # judge: observe, revert; never opens a port
  ##############################################################################

  judge = [
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
  ]

  ##############################################################################
  # target role: what inject and judge do in a member account, through one role
  ##############################################################################

  # inject's statements, then judge's that inject does not have (the shared statements
  # are the same objects, so their Sids identify them).
  both_statements = concat(local.inject, local.judge)
  both_sids       = [for s in local.both_statements : s.Sid]
  target_role = {
    Version   = "2012-10-17"
    Statement = [for i, s in local.both_statements : s if !contains(slice(local.both_sids, 0, i), s.Sid)]
  }

  # Trust: the hub's accounts, and within them only the listed roles (aws:PrincipalArn).
  # Trusting the account with a condition on the role's ARN rather than naming the roles
  # as principals keeps the trust working when a hub role is recreated (IAM would have
  # replaced a role principal by the deleted role's unique id) and lets the target role
  # be created before the hub's roles exist (an organization-wide rollout).
  trust_string_equals = merge(
    var.external_id == null ? {} : { "sts:ExternalId" = [var.external_id] },
    var.organization_id == null ? {} : { "aws:PrincipalOrgID" = [var.organization_id] },
  )
  trust_policy = length(var.hub_role_arns) == 0 ? null : {
    Version = "2012-10-17"
    Statement = [{
      Sid    = "HubRolesAssumeRole"
      Effect = "Allow"
      Principal = {
        AWS = distinct([for a in var.hub_role_arns : "arn:${split(":", a)[1]}:iam::${split(":", a)[4]}:root"])
      }
      Action = ["sts:AssumeRole"]
      Condition = merge(
        { ArnEquals = { "aws:PrincipalArn" = distinct(var.hub_role_arns) } },
        length(local.trust_string_equals) == 0 ? {} : { StringEquals = local.trust_string_equals },
      )
    }]
  }
}
