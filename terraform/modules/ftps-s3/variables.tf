# --- bucket -------------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the S3 bucket the server stores files in (config s3.bucket)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 characters: a-z, 0-9, '.', '-')."
  }
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete the bucket with the partners' files in it."
  type        = bool
  default     = false
}

variable "sse_algorithm" {
  description = "Default encryption: \"aws:kms\" (kms_key_arn, or the AWS-managed aws/s3 key when null) or \"AES256\" (SSE-S3)."
  type        = string
  default     = "aws:kms"

  validation {
    condition     = contains(["aws:kms", "AES256"], var.sse_algorithm)
    error_message = "sse_algorithm must be \"aws:kms\" or \"AES256\"."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for SSE-KMS (null: the AWS-managed aws/s3 key). The server's role is granted kms:Decrypt and kms:GenerateDataKey on it."
  type        = string
  default     = null
}

variable "versioning_enabled" {
  description = "Keep previous versions of overwritten and deleted files (recoverable for noncurrent_version_expiration_days)."
  type        = bool
  default     = true
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced or deleted version is kept (with versioning) before S3 expires it."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  description = <<-EOT
    Days after its start an unfinished multipart upload is aborted by S3. The server aborts every
    failed upload itself; this rule removes the parts left by a killed process (SIGKILL, node loss).
    It counts from the upload's start and S3 applies it once a day, so it must exceed the longest
    transfer plus the time an interrupted upload is kept for resuming (up to 24 h): 2 days.
  EOT
  type        = number
  default     = 2

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1
    error_message = "abort_incomplete_multipart_upload_days must be at least 1."
  }
}

variable "access_log_bucket" {
  description = "Bucket receiving S3 server access logs (null: no access logging)."
  type        = string
  default     = null
}

variable "access_log_prefix" {
  description = "Key prefix of the access logs in access_log_bucket."
  type        = string
  default     = "s3-access/ftps-s3/"
}

variable "eventbridge_notifications" {
  description = "Send the bucket's events (e.g. Object Created after an upload) to Amazon EventBridge, so processing can react to partners' files."
  type        = bool
  default     = true
}

# --- IAM role for the service account (IRSA) ------------------------------------------------------

variable "create_iam_role" {
  description = "Create the IAM role the pods assume through IRSA."
  type        = bool
  default     = true
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID). Required with create_iam_role."
  type        = string
  default     = null
}

variable "iam_role_name" {
  description = "Name of the IAM role (null: \"<bucket_name>-ftps-s3\")."
  type        = string
  default     = null
}

variable "iam_role_path" {
  description = "Path of the IAM role."
  type        = string
  default     = "/"
}

variable "iam_role_permissions_boundary" {
  description = "ARN of a permissions boundary for the IAM role."
  type        = string
  default     = null
}

variable "additional_bucket_arns" {
  description = "ARNs of further buckets the server may use (users with a `bucket` of their own in users.toml); granted the same actions."
  type        = list(string)
  default     = []
}

variable "namespace" {
  description = "Kubernetes namespace of the release (IRSA trust and helm_release)."
  type        = string
  default     = "ftps-s3"
}

variable "service_account_name" {
  description = "Name of the chart's ServiceAccount (IRSA trust; passed to the chart as serviceAccount.name)."
  type        = string
  default     = "ftps-s3"
}

# --- Helm release (optional) ----------------------------------------------------------------------

variable "helm_release" {
  description = <<-EOT
    Install the chart (helm/ftps-s3) with the bucket, region and role filled in. `values` are
    further YAML documents (TLS, users, service annotations...), applied after the module's own.
    `chart` defaults to the chart in this repository; set it (and `repository`, `version`) to a
    published chart. `atomic` rolls a failed install or upgrade back (and `cleanup_on_fail`
    deletes what it created), so a bad value never leaves a half-applied release behind.
  EOT
  type = object({
    enabled          = optional(bool, false)
    name             = optional(string, "ftps-s3")
    chart            = optional(string)
    repository       = optional(string)
    version          = optional(string)
    create_namespace = optional(bool, true)
    timeout          = optional(number, 600)
    atomic           = optional(bool, true)
    cleanup_on_fail  = optional(bool, true)
    values           = optional(list(string), [])
  })
  default = {}
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
