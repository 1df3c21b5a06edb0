from kms_iac.cli.main import main

main()
