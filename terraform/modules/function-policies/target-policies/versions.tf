terraform {
  # No providers, like its parent: the documents are built from the inputs with Terraform
  # core only, so the lab renders exactly what is deployed without reaching AWS.
  required_version = ">= 1.5.0"
}
