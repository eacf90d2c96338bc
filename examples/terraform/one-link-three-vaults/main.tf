# One application secret, three Key Vaults that must always hold its current value.
# When the secret is within 30 days of expiry, `terraform plan` warns and shows an in-place update;
# `terraform apply` creates a new secret, verifies it, writes it to all three vaults and keeps the
# old one valid for the grace period.

terraform {
  required_providers {
    rotor = {
      source = "certifyclouds/rotor"
    }
  }
}

provider "rotor" {}

variable "application_id" {
  description = "Application (client) id of the App Registration."
  type        = string
}

variable "vaults" {
  description = "Vault URLs by role."
  type        = map(string)
  default = {
    prod = "https://kv-prod.vault.azure.net/"
    dev  = "https://kv-dev.vault.azure.net/"
    dr   = "https://kv-dr.vault.azure.net/"
  }
}

resource "rotor_secret_link" "myapp" {
  application_id          = var.application_id
  credential_display_name = "Secret 1"

  targets = [for url in values(var.vaults) : {
    vault_url   = url
    secret_name = "myapp-client-secret"
  }]
}

output "current_key_id" {
  value = rotor_secret_link.myapp.current_key_id
}

output "next_rotation_at" {
  value = rotor_secret_link.myapp.next_rotation_at
}
