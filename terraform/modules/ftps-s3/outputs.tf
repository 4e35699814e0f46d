output "bucket_name" {
  description = "Name of the bucket (config s3.bucket)."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.this.arn
}

output "bucket_region" {
  description = "Region of the bucket (config s3.region)."
  value       = aws_s3_bucket.this.region
}

output "iam_role_arn" {
  description = "ARN of the IRSA role (chart value serviceAccount.irsaRoleArn); null when create_iam_role is false."
  value       = local.create_iam_role ? aws_iam_role.this[0].arn : null
}

output "iam_policy_json" {
  description = "The least-privilege policy the server needs, for attaching to a role made elsewhere."
  value       = data.aws_iam_policy_document.server.json
}

output "helm_release_name" {
  description = "Name of the Helm release; null when not installed by this module."
  value       = var.helm_release.enabled ? helm_release.this[0].name : null
}
