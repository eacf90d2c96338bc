# Discovery into links: rotor_matches finds which Key Vault secrets hold which application
# secrets (HIGH confidence only), and for_each manages every link it found.

terraform {
  required_providers {
    rotor = {
      source = "certifyclouds/rotor"
    }
  }
}

provider "rotor" {}

variable "vault_urls" {
  description = "Key Vaults to search."
  type        = list(string)
}

data "rotor_matches" "all" {
  vault_urls     = var.vault_urls
  min_confidence = "HIGH"
  exclusions     = ["name:legacy-*"]
}

resource "rotor_secret_link" "discovered" {
  for_each = data.rotor_matches.all.links

  application_id          = each.value.application_id
  credential_display_name = each.value.credential_display_name
  targets                 = each.value.targets
}

data "rotor_applications" "expiring" {
  expiring_within_days = 30
}

output "links" {
  value = keys(rotor_secret_link.discovered)
}

output "expiring_applications" {
  value = [for a in data.rotor_applications.expiring.applications : a.display_name]
}
