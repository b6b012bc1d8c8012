"""Smaller gaps in moto's CloudFormation: a template bucket's settings, Cloud Map namespaces."""

import uuid

from moto.core.common_models import CloudFormationModel
from moto.s3.models import FakeBucket, s3_backends
from moto.servicediscovery.models import servicediscovery_backends
from moto.utilities.utils import get_partition

original_create_bucket = FakeBucket.create_from_cloudformation_json.__func__


@classmethod
def create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """moto's bucket plus the template's Block Public Access and versioning settings."""
    bucket = original_create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    properties = cloudformation_json.get("Properties", {})
    backend = s3_backends[account_id][get_partition(region_name)]
    if "PublicAccessBlockConfiguration" in properties:
        settings_on = {key: str(value).lower() for key, value in properties["PublicAccessBlockConfiguration"].items()}
        backend.put_public_access_block(bucket.name, settings_on)
    if "VersioningConfiguration" in properties:
        backend.put_bucket_versioning(bucket.name, properties["VersioningConfiguration"]["Status"])
    return bucket


FakeBucket.create_from_cloudformation_json = create_bucket


class HttpNamespace(CloudFormationModel):
    """AWS::ServiceDiscovery::HttpNamespace, which moto's CloudFormation skips."""

    __module__ = "moto.servicediscovery.models"  # moto files its models under the service in the module name

    def __init__(self, namespace):
        self.namespace = namespace

    @staticmethod
    def cloudformation_type():
        return "AWS::ServiceDiscovery::HttpNamespace"

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        backend = servicediscovery_backends[account_id][region_name]
        properties = cloudformation_json["Properties"]
        name = properties.get("Name", resource_name)
        backend.create_http_namespace(name, str(uuid.uuid4()), properties.get("Description", ""), [])
        namespace = next(ns for ns in backend.namespaces.values() if ns.name == name)
        return cls(namespace)

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in ("Arn", "Id")

    def get_cfn_attribute(self, attribute_name):
        return {"Arn": self.namespace.arn, "Id": self.namespace.id}[attribute_name]

    @property
    def physical_resource_id(self):
        return self.namespace.id

    def delete(self, account_id, region_name):
        servicediscovery_backends[account_id][region_name].delete_namespace(self.namespace.id)
