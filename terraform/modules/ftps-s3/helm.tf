# Optional: the chart, installed with what this module knows (bucket, region, IRSA role, service
# account name); everything else comes from var.helm_release.values.

locals {
  helm_chart = coalesce(var.helm_release.chart, "${path.module}/../../../helm/ftps-s3")
  helm_values = {
    serviceAccount = {
      create      = true
      name        = var.service_account_name
      irsaRoleArn = local.create_iam_role ? aws_iam_role.this[0].arn : ""
    }
    config = {
      s3 = {
        bucket = aws_s3_bucket.this.id
        region = aws_s3_bucket.this.region
      }
    }
  }
}

resource "helm_release" "this" {
  count = var.helm_release.enabled ? 1 : 0

  name             = var.helm_release.name
  namespace        = var.namespace
  create_namespace = var.helm_release.create_namespace
  chart            = local.helm_chart
  repository       = var.helm_release.repository
  version          = var.helm_release.version
  timeout          = var.helm_release.timeout
  wait             = true
  atomic           = var.helm_release.atomic
  cleanup_on_fail  = var.helm_release.cleanup_on_fail

  values = concat([yamlencode(local.helm_values)], var.helm_release.values)

  # The pods need the bucket policy and the role's permissions before they report ready.
  depends_on = [aws_iam_role_policy.this, aws_s3_bucket_policy.this]
}
