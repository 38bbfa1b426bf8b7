"""SQLAlchemy 2 typed models, one module per aggregate; importing this package registers them all."""

from server.models.activities import (
    Activity,
    ActivityParticipant,
    Attachment,
    Meeting,
    Thread,
    ThreadKey,
)
from server.models.base import Base, utcnow
from server.models.campaigns import (
    Campaign,
    CampaignRecipient,
    ContactConsent,
    MailingBlock,
    Segment,
)
from server.models.capture import CaptureDecision, CaptureRule, QuarantinedItem, Suppression
from server.models.contacts import (
    Company,
    CompanyDomain,
    CompanyTag,
    Contact,
    ContactEmail,
    ContactTag,
    CustomFieldDefinition,
)
from server.models.deals import Deal, DealContact, DealStageChange, FollowUp, Pipeline, Stage
from server.models.mailboxes import MailboxLink, MailboxObservation, SyncCheckpoint
from server.models.platform import (
    AuditEvent,
    Blob,
    BlobPart,
    Job,
    RateLimitWindow,
    Setting,
    SignalState,
    Template,
    Webhook,
    WebhookDelivery,
)
from server.models.signals import Signal, SignalDirty, SignalEvidence
from server.models.users import ApiToken, User

__all__ = [
    "Activity",
    "ActivityParticipant",
    "ApiToken",
    "Attachment",
    "AuditEvent",
    "Base",
    "Blob",
    "BlobPart",
    "Campaign",
    "CampaignRecipient",
    "CaptureDecision",
    "CaptureRule",
    "Company",
    "CompanyDomain",
    "CompanyTag",
    "Contact",
    "ContactConsent",
    "ContactEmail",
    "ContactTag",
    "CustomFieldDefinition",
    "Deal",
    "DealContact",
    "DealStageChange",
    "FollowUp",
    "Job",
    "MailboxLink",
    "MailboxObservation",
    "MailingBlock",
    "Meeting",
    "Pipeline",
    "QuarantinedItem",
    "RateLimitWindow",
    "Segment",
    "Setting",
    "Signal",
    "SignalDirty",
    "SignalEvidence",
    "SignalState",
    "Stage",
    "Suppression",
    "SyncCheckpoint",
    "Template",
    "Thread",
    "ThreadKey",
    "User",
    "Webhook",
    "WebhookDelivery",
    "utcnow",
]
