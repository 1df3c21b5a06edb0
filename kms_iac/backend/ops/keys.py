"""Key lifecycle: CreateKey, DescribeKey, ListKeys, UpdateKeyDescription, EnableKey,
DisableKey, ScheduleKeyDeletion, CancelKeyDeletion, and AWS managed keys."""

from __future__ import annotations

from kms_iac.backend import keystate
from kms_iac.backend.clock import DAY
from kms_iac.backend.core import Call
from kms_iac.backend.errors import (
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_iac.backend.identifiers import AWS_ALIAS_PREFIX, new_key_id
from kms_iac.backend.model import validation_error
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.managed import refuse_if_aws_managed
from kms_iac.backend.ops.pagination import paginate
from kms_iac.backend.ops.tags import check_tags, write_tags
from kms_iac.backend.policy_documents import aws_managed_key_policy, check_policy_document, default_key_policy
from kms_iac.backend.store import AliasRecord, KeyRecord

SYMMETRIC = "SYMMETRIC_DEFAULT"
MIN_WINDOW, MAX_WINDOW, DEFAULT_WINDOW = 7, 30, 30
DEFAULT_ROTATION_DAYS = 365

# alias/aws/<name> -> (service endpoint prefix used in kms:ViaService, label in the policy Sid)
AWS_MANAGED_SERVICES: dict[str, tuple[str, str]] = {
    "s3": ("s3", "Amazon S3"), "ebs": ("ec2", "EBS"), "rds": ("rds", "RDS"), "lambda": ("lambda", "AWS Lambda"),
    "ssm": ("ssm", "AWS Systems Manager"), "secretsmanager": ("secretsmanager", "AWS Secrets Manager"),
    "dynamodb": ("dynamodb", "Amazon DynamoDB"), "sns": ("sns", "Amazon SNS"), "sqs": ("sqs", "Amazon SQS"),
    "kinesis": ("kinesis", "Amazon Kinesis"), "redshift": ("redshift", "Amazon Redshift"),
    "elasticfilesystem": ("elasticfilesystem", "Amazon Elastic File System"), "es": ("es", "Amazon OpenSearch Service"),
    "glue": ("glue", "AWS Glue"), "backup": ("backup", "AWS Backup"), "acm": ("acm", "AWS Certificate Manager"),
    "codecommit": ("codecommit", "AWS CodeCommit"), "codeartifact": ("codeartifact", "AWS CodeArtifact"),
    "kafka": ("kafka", "Amazon MSK"), "fsx": ("fsx", "Amazon FSx"), "xray": ("xray", "AWS X-Ray"),
    "timestream": ("timestream", "Amazon Timestream"), "cloud9": ("cloud9", "AWS Cloud9"),
    "connect": ("connect", "Amazon Connect"), "lightsail": ("lightsail", "Amazon Lightsail"),
    "dms": ("dms", "AWS Database Migration Service"), "elasticache": ("elasticache", "Amazon ElastiCache"),
}


def metadata(call: Call, key: KeyRecord) -> dict:
    """KeyMetadata as DescribeKey and CreateKey return it."""
    md: dict = {
        "AWSAccountId": key.account,
        "KeyId": key.key_id,
        "Arn": key.arn,
        "CreationDate": key.created,
        "Enabled": key.state == keystate.ENABLED,
        "Description": key.description,
        "KeyUsage": key.key_usage,
        "KeyState": key.state,
        "Origin": key.origin,
        "KeyManager": key.key_manager,
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": bool(key.multi_region),
    }
    if key.key_spec != SYMMETRIC:  # asymmetric and HMAC keys list their own algorithms
        from kms_iac.backend.ops.asymmetric import algorithm_fields

        del md["EncryptionAlgorithms"]
        md.update(algorithm_fields(key.key_spec, key.key_usage))
    if key.state == keystate.PENDING_DELETION:
        md["DeletionDate"] = key.deletion_date
        md["PendingDeletionWindowInDays"] = key.pending_window
    if key.origin == "EXTERNAL" and key.state != keystate.PENDING_IMPORT:
        from kms_iac.backend.ops.imports import expiration_fields

        md.update(expiration_fields(call, key))
    if key.custom_key_store_id:
        md["CustomKeyStoreId"] = key.custom_key_store_id
        from kms_iac.backend.ops.custom_key_stores import cluster_of

        cluster_id = cluster_of(call, key.custom_key_store_id)
        if cluster_id:
            md["CloudHsmClusterId"] = cluster_id
    if key.multi_region:
        primary_region = key.primary_region or key.region
        md["MultiRegionConfiguration"] = {
            "MultiRegionKeyType": key.multi_region_role or "PRIMARY",
            "PrimaryKey": {"Arn": f"arn:aws:kms:{primary_region}:{key.account}:key/{key.key_id}", "Region": primary_region},
            "ReplicaKeys": [
                {"Arn": r.arn, "Region": r.region}
                for r in call.store.find_key_any_region(key.key_id)
                if r.region != primary_region
            ],
        }
    # Only symmetric encryption keys have material ids (rotation, imports); a replica being
    # created has none yet. Deleted or expired imported material keeps its id.
    if key.current_version and key.key_spec == SYMMETRIC and key.state != keystate.CREATING:
        m = call.store.get_material(key.key_id, key.region, key.current_version)
        if m is not None:
            md["CurrentKeyMaterialId"] = m.material_id
    return md


def new_key(call: Call, params: dict) -> KeyRecord:
    """Check CreateKey's arguments and insert the key (with its first material); no partial writes."""
    spec = params.get("KeySpec")
    legacy = params.get("CustomerMasterKeySpec")
    if spec and legacy and spec != legacy:
        raise ValidationException("You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.")
    spec = spec or legacy or SYMMETRIC
    usage = params.get("KeyUsage") or "ENCRYPT_DECRYPT"
    origin = params.get("Origin") or "AWS_KMS"
    material = None
    if spec != SYMMETRIC:  # asymmetric and HMAC keys: the private key or secret is the material
        from kms_iac.backend.ops.asymmetric import check_spec_usage, generate_material

        usage = check_spec_usage(spec, params.get("KeyUsage"), origin, bool(params.get("CustomKeyStoreId")), call.ctx.region)
    elif usage != "ENCRYPT_DECRYPT":
        raise ValidationException(f"KeyUsage {usage} is not compatible with KeySpec {spec}")
    if origin not in ("AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM"):
        raise UnsupportedOperationException(f"Origin {origin} is not supported by the kms-iac local backend yet.")
    if params.get("XksKeyId"):
        raise UnsupportedOperationException("External key stores are not supported by the kms-iac local backend yet.")
    cks = None
    if params.get("CustomKeyStoreId") or origin == "AWS_CLOUDHSM":
        from kms_iac.backend.ops.custom_key_stores import store_for_new_key

        cks = store_for_new_key(call, params, origin, bool(params.get("MultiRegion")))
    policy = params.get("Policy")
    if policy is not None:
        check_policy_document(policy)
    else:
        policy = default_key_policy(call.ctx.account)
    tags = params.get("Tags") or []
    check_tags(tags)
    multi = bool(params.get("MultiRegion"))
    key = KeyRecord(
        key_id=new_key_id(multi),
        region=call.ctx.region,
        account=call.ctx.account,
        created=call.now,
        key_spec=spec,
        key_usage=usage,
        origin=origin,
        key_manager="CUSTOMER",
        state=keystate.PENDING_IMPORT if origin == "EXTERNAL" else keystate.ENABLED,
        policy=policy,
        description=params.get("Description") or "",
        multi_region=int(multi),
        multi_region_role="PRIMARY" if multi else None,
        primary_region=call.ctx.region if multi else None,
        custom_key_store_id=cks.cks_id if cks is not None else None,
    )
    authorizer = call.backend.authorizer
    if authorizer is not None:
        authorizer(call, "CreateKey", key, params)
    if spec != SYMMETRIC:
        material = generate_material(call, spec) if origin == "AWS_KMS" else None  # EXTERNAL: imported later
    with call.write() as c:
        call.store.insert_key(c, key)
        if origin == "AWS_KMS":
            call.backend.add_material(c, key, call.now, None, material=material)
        elif cks is not None:  # material generated inside the token, never stored here
            from kms_iac.backend.ops.custom_key_stores import create_hsm_key

            create_hsm_key(call, c, key, cks)
        write_tags(c, key, tags)
    call.resources.append(key.arn)
    return key


def _generates_material(params: dict) -> bool:
    """Whether CreateKey makes an asymmetric or HMAC key's material here (origin AWS_KMS, no key store)."""
    spec = params.get("KeySpec") or params.get("CustomerMasterKeySpec") or SYMMETRIC
    return spec != SYMMETRIC and (params.get("Origin") or "AWS_KMS") == "AWS_KMS" and not params.get("CustomKeyStoreId")


@operation("CreateKey")  # its own transaction: see below
def create_key(call: Call, params: dict) -> dict:
    """One write transaction, as for every other mutating operation, except that an asymmetric or
    HMAC key's material is generated before its transaction (an RSA_4096 key takes seconds, off
    the server's event loop and without the store lock): its checks before that only read, and
    the key's id is new, so nothing they read can change under it."""
    if _generates_material(params):
        key = new_key(call, params)
        return {"KeyMetadata": metadata(call, key)}
    with call.write():
        key = new_key(call, params)
        return {"KeyMetadata": metadata(call, key)}


@operation("DescribeKey", key="KeyId")
def describe_key(call: Call, params: dict, key: KeyRecord) -> dict:
    return {"KeyMetadata": metadata(call, key)}


@operation("ListKeys")
def list_keys(call: Call, params: dict) -> dict:
    rows = call.store.list_keys(call.ctx.account, call.ctx.region)
    page, extra = paginate(rows, params, sort_key=lambda r: r[0])
    return {
        "Keys": [{"KeyId": kid, "KeyArn": f"arn:aws:kms:{call.ctx.region}:{acct}:key/{kid}"} for kid, acct in page],
        **extra,
    }


@operation("UpdateKeyDescription", key="KeyId", mutates=True)
def update_key_description(call: Call, params: dict, key: KeyRecord) -> dict:
    refuse_if_aws_managed(call, key)
    call.store.update_key(call.conn, key, description=params["Description"])
    return {}


@operation("EnableKey", key="KeyId", mutates=True)
def enable_key(call: Call, params: dict, key: KeyRecord) -> dict:
    refuse_if_aws_managed(call, key)
    call.store.update_key(call.conn, key, state=keystate.ENABLED)
    return {}


@operation("DisableKey", key="KeyId", mutates=True)
def disable_key(call: Call, params: dict, key: KeyRecord) -> dict:
    refuse_if_aws_managed(call, key)
    call.store.update_key(call.conn, key, state=keystate.DISABLED)
    return {}


@operation("ScheduleKeyDeletion", key="KeyId", mutates=True)
def schedule_key_deletion(call: Call, params: dict, key: KeyRecord) -> dict:
    days = params.get("PendingWindowInDays")
    if days is None:
        days = DEFAULT_WINDOW
    if days < MIN_WINDOW or days > MAX_WINDOW:
        bound = f"greater than or equal to {MIN_WINDOW}" if days < MIN_WINDOW else f"less than or equal to {MAX_WINDOW}"
        raise validation_error([f"Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value {bound}"])
    refuse_if_aws_managed(call, key)
    when = call.now + days * DAY
    call.store.update_key(call.conn, key, state=keystate.PENDING_DELETION, deletion_date=when, pending_window=days)
    return {"KeyId": key.arn, "DeletionDate": when, "KeyState": keystate.PENDING_DELETION, "PendingWindowInDays": days}


@operation("CancelKeyDeletion", key="KeyId", mutates=True)
def cancel_key_deletion(call: Call, params: dict, key: KeyRecord) -> dict:
    refuse_if_aws_managed(call, key)
    # A key without all its material (EXTERNAL: never imported, deleted or expired) goes back to
    # PendingImport, as in AWS; any other key to Disabled.
    state = keystate.DISABLED if key.current_version else keystate.PENDING_IMPORT
    if key.origin == "EXTERNAL" and key.current_version:
        from kms_iac.backend.ops.imports import material_complete

        state = keystate.DISABLED if material_complete(call.conn, key) else keystate.PENDING_IMPORT
    call.store.update_key(call.conn, key, state=state, deletion_date=None, pending_window=None)
    return {"KeyId": key.arn}


def create_aws_managed_key(call: Call, alias_name: str, region: str) -> KeyRecord:
    """First use of ``alias/aws/<service>`` creates the AWS managed key, as AWS does."""
    service = alias_name[len(AWS_ALIAS_PREFIX):]
    if service not in AWS_MANAGED_SERVICES:
        raise NotFoundException(f"Alias arn:aws:kms:{region}:{call.ctx.account}:{alias_name} is not found.")
    via, label = AWS_MANAGED_SERVICES[service]
    account = call.ctx.account
    key = KeyRecord(
        key_id=new_key_id(),
        region=region,
        account=account,
        created=call.now,
        key_spec=SYMMETRIC,
        key_usage="ENCRYPT_DECRYPT",
        origin="AWS_KMS",
        key_manager="AWS",
        state=keystate.ENABLED,
        policy=aws_managed_key_policy(account, region, service, via, label),
        description=f"Default key that protects my {label} data when no other key is defined",
        rotation_enabled=1,
        rotation_period=DEFAULT_ROTATION_DAYS,
        rotation_anchor=call.now,
    )
    with call.write() as c:
        existing = call.store.get_alias(account, region, alias_name)
        if existing is not None:  # another process created it first
            found = call.store.get_key(existing.key_id, region)
            if found is not None:
                return found
        call.store.insert_key(c, key)
        call.backend.add_material(c, key, call.now, None)
        c.execute(
            "INSERT INTO aliases (account, region, name, key_id, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
            (account, region, alias_name, key.key_id, call.now, call.now),
        )
    return key


__all__ = ["metadata", "new_key", "create_aws_managed_key", "AliasRecord"]
