"""Site-configurable thresholds of the contract, with the contract's defaults.

These are local policy, not clinical claims; the service's Settings embeds this model so a
site sets them through the environment (``OI_CDS_PLAN__...``).
"""

from pydantic import BaseModel, ConfigDict, Field


class PlanSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    recurrent_fracture_count: int = Field(2, ge=1, description="long-bone fractures that make 'recurrent'")
    recurrent_window_months: int = Field(
        12, ge=1, description="recurrence window, calendar months, inclusive"
    )
    recent_fracture_days: int = Field(42, ge=0, description="'recent' fracture window, days, inclusive")
    maturity_age_female: int = Field(14, ge=0, le=40, description="default skeletal-maturity age, female")
    maturity_age_male: int = Field(16, ge=0, le=40, description="default skeletal-maturity age, male")
    maturity_age_other: int = Field(
        15, ge=0, le=40, description="default skeletal-maturity age, other/unknown sex"
    )
    young_adult_age_limit: int = Field(30, ge=1, le=120, description="'young adult' is below this age")
    smallest_telescoping_rod_mm: float = Field(3.2, gt=0, description="smallest telescoping rod diameter, mm")
    functional_status_max_age_months: int = Field(
        24, ge=1, description="how old an ambulatory status may be, months"
    )
    bisphosphonate_completed_window_months: int = Field(
        6, ge=0, description="a completed bisphosphonate still counts as active for this many months"
    )

    def maturity_age(self, gender: str | None) -> int:
        if gender == "female":
            return self.maturity_age_female
        if gender == "male":
            return self.maturity_age_male
        return self.maturity_age_other
