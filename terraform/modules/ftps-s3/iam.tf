# The role the server's pods assume through IRSA, allowed exactly what the server does on its
# bucket(s): list (with delimiter), read (ranged GET, HEAD), write (PutObject, multipart upload,
# CopyObject/UploadPartCopy for renames), delete, abort/list multipart uploads, and the object
# tags that carry the SHA-256/CRC32 digests of multipart uploads (read, write, remove; by
# version on versioned buckets). scripts/iam-check.py derives the list from the S3 calls in
# src/ and fails lint-deploy when this policy grants more or less.

locals {
  create_iam_role = var.create_iam_role
  iam_role_name   = coalesce(var.iam_role_name, "${var.bucket_name}-ftps-s3")
  # "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC" ->
  # "oidc.eks.eu-west-1.amazonaws.com/id/ABC", the prefix of the token's condition keys.
  oidc_issuer = var.oidc_provider_arn == null ? "" : element(split("oidc-provider/", var.oidc_provider_arn), 1)
}

data "aws_iam_policy_document" "assume_role" {
  count = local.create_iam_role ? 1 : 0

  statement {
    sid     = "ServiceAccount"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account_name}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "server" {
  statement {
    sid = "Buckets"
    actions = [
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
    ]
    resources = local.bucket_arns
  }

  statement {
    sid = "Objects"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:DeleteObject",
      "s3:DeleteObjectTagging",
      "s3:GetObject",
      "s3:GetObjectTagging",
      "s3:GetObjectVersionTagging",
      "s3:ListMultipartUploadParts",
      "s3:PutObject",
      "s3:PutObjectTagging",
      "s3:PutObjectVersionTagging",
    ]
    resources = [for arn in local.bucket_arns : "${arn}/*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      # SSE-KMS: GenerateDataKey to write (parts included), Decrypt to read and to complete
      # multipart uploads.
      sid = "BucketKey"
      actions = [
        "kms:Decrypt",
        "kms:GenerateDataKey",
      ]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role" "this" {
  count = local.create_iam_role ? 1 : 0

  name                 = local.iam_role_name
  path                 = var.iam_role_path
  description          = "ftps-s3 server (IRSA: ${var.namespace}/${var.service_account_name}) on s3://${var.bucket_name}"
  assume_role_policy   = data.aws_iam_policy_document.assume_role[0].json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags

  lifecycle {
    precondition {
      condition     = var.oidc_provider_arn != null
      error_message = "oidc_provider_arn is required when create_iam_role is true."
    }
  }
}

resource "aws_iam_role_policy" "this" {
  count = local.create_iam_role ? 1 : 0

  name   = "ftps-s3-bucket-access"
  role   = aws_iam_role.this[0].id
  policy = data.aws_iam_policy_document.server.json
}
