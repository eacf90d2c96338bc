# One application secret, three Key Vault secrets (names may differ per vault) that must always
# hold its current value — all in one link: a lineage (application + credential display name) has
# exactly one rotor_secret_link.
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

variable "targets" {
  description = "Every Key Vault secret that holds this client secret, by role. One rotor_secret_link per lineage: list every holder here instead of writing a second link for the same credential (that plan fails)."
  type = map(object({
    vault_url   = string
    secret_name = string
  }))
  default = {
    prod    = { vault_url = "https://kv-prod.vault.azure.net/", secret_name = "myapp-secret" }
    dev     = { vault_url = "https://kv-dev.vault.azure.net/", secret_name = "myapp-dev-secret" }
    staging = { vault_url = "https://kv-staging.vault.azure.net/", secret_name = "myapp-secret-v2" }
  }
}

resource "rotor_secret_link" "myapp" {
  application_id          = var.application_id
  credential_display_name = "Secret 1"
  targets                 = values(var.targets)
}

output "current_key_id" {
  value = rotor_secret_link.myapp.current_key_id
}

output "next_rotation_at" {
  value = rotor_secret_link.myapp.next_rotation_at
}
