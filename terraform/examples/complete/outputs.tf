output "bucket_name" {
  description = "The bucket."
  value       = module.ftps_s3.bucket_name
}

output "iam_role_arn" {
  description = "The role the pods assume."
  value       = module.ftps_s3.iam_role_arn
}

output "ftp_addresses" {
  description = "The NLB's Elastic IPs (the first is announced in PASV replies): point the host name at them."
  value       = aws_eip.nlb[*].public_ip
}

output "next_steps" {
  description = "How to reach the server."
  value       = "Point ${var.ftp_host_name} at ${join(", ", aws_eip.nlb[*].public_ip)} (A records); check with: helm -n ${local.namespace} test ${module.ftps_s3.helm_release_name}"
}
