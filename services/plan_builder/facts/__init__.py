"""Facts: the vocabulary the PlanDefinitions read, and its readers by resource kind.

- ``vocabulary``: every fact's spec (name, type, meaning, ValueSets, reader, statement);
- ``base``: what a reader returns (FactValue) and reads (Record);
- ``patient``, ``conditions``, ``observations``, ``medication_use``: the readers;
- ``extract``: a patient's resources -> PatientFacts.
"""

from services.plan_builder.facts.base import (
    FactSpec,
    FactValue,
    Missing,
    ObservationRead,
    Record,
    resource_ref,
)
from services.plan_builder.facts.conditions import Fracture, may_have_oi, status_codes
from services.plan_builder.facts.extract import extract_facts
from services.plan_builder.facts.medication_use import drug_value_sets
from services.plan_builder.facts.observations import site_key
from services.plan_builder.facts.patient_facts import PatientFacts
from services.plan_builder.facts.vocabulary import (
    FACT_NAMES,
    OBSERVATION_FACTS,
    ORDER_FACT_NAMES,
    VOCABULARY,
    Vocabulary,
)

__all__ = [
    "FACT_NAMES",
    "OBSERVATION_FACTS",
    "ORDER_FACT_NAMES",
    "VOCABULARY",
    "FactSpec",
    "FactValue",
    "Fracture",
    "Missing",
    "ObservationRead",
    "PatientFacts",
    "Record",
    "Vocabulary",
    "drug_value_sets",
    "extract_facts",
    "may_have_oi",
    "resource_ref",
    "site_key",
    "status_codes",
]
