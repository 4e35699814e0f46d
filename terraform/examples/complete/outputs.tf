output "bucket_name" {
  description = "The bucket."
  value       = module.ftps_s3.bucket_name
}

output "iam_role_arn" {
  description = "The role the pods assume."
  value       = module.ftps_s3.iam_role_arn
}

output "next_steps" {
  description = "How to reach the server."
  value       = "kubectl -n ftps-s3 get service ${module.ftps_s3.helm_release_name} -o jsonpath='{.status.loadBalancer.ingress[0].hostname}' then point ${var.ftp_host_name} at it (CNAME)."
}
