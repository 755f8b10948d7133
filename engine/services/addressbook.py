"""Each account's address book: contacts and conference rooms to invite, and planning templates
(one of them the default that pre-fills Planning). Everything is scoped to its owner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from engine.adapters.db.addressbook import AddressBookRepository, DuplicateName
from engine.domain import accounts as rules
from engine.domain.accounts import Contact, Room, Template
from engine.domain.errors import NotFound, ValidationError
from engine.domain.model import ParticipantPlan
from engine.domain.numberplan import NumberPlan
from engine.domain.planning import check_participant_count, validate_participants

MAX_ENTRIES_PER_KIND = 1000
NumberPlanOf = Callable[[int], Awaitable[NumberPlan]]


class AddressBookService:
    """``number_plan_of`` gives an account's dial-out plan: what is saved here (a contact's or
    room's number, a template's participants) passes the same rule Planning applies."""

    def __init__(self, repository: AddressBookRepository, number_plan_of: NumberPlanOf | None = None) -> None:
        self.repository = repository
        self.number_plan_of = number_plan_of

    async def _dialable(self, owner_id: int, raw: str, field_name: str = "number") -> str:
        number = rules.dial_number(raw, field_name)
        if self.number_plan_of is not None:
            number = (await self.number_plan_of(owner_id)).validate(number, field_name)
        return number

    async def _plannable(self, owner_id: int, template: dict[str, Any]) -> None:
        """A template's participants as Planning would check them: numbers of the account's plan,
        none twice, no more than its number of participants."""
        participants = template.get("participants") or []
        if self.number_plan_of is not None:
            plans = [ParticipantPlan(p.number, p.name, p.email, p.role) for p in participants]
            validate_participants(plans, await self.number_plan_of(owner_id))
        check_participant_count(len(participants), int(template.get("max_participants") or 10))

    @staticmethod
    def _duplicate(name: str) -> ValidationError:
        return ValidationError("A template named “%(name)s” exists already; choose another name", "name", name=name)

    # contacts
    async def contacts(self, owner_id: int, search: str = "") -> list[Contact]:
        return await self.repository.contacts(owner_id, (search or "").strip()[:100])

    async def contact(self, owner_id: int, contact_id: int) -> Contact:
        contact = await self.repository.contact(owner_id, contact_id)
        if contact is None:
            raise NotFound("No such contact")
        return contact

    async def add_contact(self, owner_id: int, name: str, number: str, email: str | None = None) -> Contact:
        if len(await self.repository.contacts(owner_id)) >= MAX_ENTRIES_PER_KIND:
            raise ValidationError("The address book is full", "name")
        return await self.repository.insert_contact(
            owner_id, rules.person_name(name, required=True), await self._dialable(owner_id, number),
            rules.email(email))

    async def update_contact(self, owner_id: int, contact_id: int, name: str, number: str,
                             email: str | None = None) -> Contact:
        contact = await self.repository.update_contact(
            owner_id, contact_id, rules.person_name(name, required=True), await self._dialable(owner_id, number),
            rules.email(email))
        if contact is None:
            raise NotFound("No such contact")
        return contact

    async def delete_contact(self, owner_id: int, contact_id: int) -> None:
        if not await self.repository.delete_contact(owner_id, contact_id):
            raise NotFound("No such contact")

    # conference rooms
    async def rooms(self, owner_id: int, search: str = "") -> list[Room]:
        return await self.repository.rooms(owner_id, (search or "").strip()[:100])

    async def room(self, owner_id: int, room_id: int) -> Room:
        room = await self.repository.room(owner_id, room_id)
        if room is None:
            raise NotFound("No such conference room")
        return room

    async def add_room(self, owner_id: int, name: str, number: str, location: str = "") -> Room:
        if len(await self.repository.rooms(owner_id)) >= MAX_ENTRIES_PER_KIND:
            raise ValidationError("The list of rooms is full", "name")
        return await self.repository.insert_room(
            owner_id, rules.person_name(name, required=True), await self._dialable(owner_id, number),
            rules.location(location))

    async def update_room(self, owner_id: int, room_id: int, name: str, number: str, location: str = "") -> Room:
        room = await self.repository.update_room(
            owner_id, room_id, rules.person_name(name, required=True), await self._dialable(owner_id, number),
            rules.location(location))
        if room is None:
            raise NotFound("No such conference room")
        return room

    async def delete_room(self, owner_id: int, room_id: int) -> None:
        if not await self.repository.delete_room(owner_id, room_id):
            raise NotFound("No such conference room")

    # templates
    async def templates(self, owner_id: int) -> list[Template]:
        return await self.repository.templates(owner_id)

    async def template(self, owner_id: int, template_id: int) -> Template:
        template = await self.repository.template(owner_id, template_id)
        if template is None:
            raise NotFound("No such template")
        return template

    async def default_template(self, owner_id: int) -> Template | None:
        return await self.repository.default_template(owner_id)

    async def create_template(self, owner_id: int, values: dict[str, Any]) -> Template:
        """``values``: name (required) and any of the Planning fields; is_default makes it the default."""
        checked = rules.template_values(values)
        if "name" not in checked:
            raise ValidationError("Enter a name for the template", "name")
        if len(await self.repository.templates(owner_id)) >= MAX_ENTRIES_PER_KIND:
            raise ValidationError("Too many templates", "name")
        await self._plannable(owner_id, checked)
        try:
            return await self.repository.insert_template(owner_id, checked)
        except DuplicateName:
            raise self._duplicate(checked["name"]) from None

    async def update_template(self, owner_id: int, template_id: int, values: dict[str, Any]) -> Template:
        checked = rules.template_values(values)
        current = await self.template(owner_id, template_id)
        await self._plannable(owner_id, {**asdict(current), **checked} if "participants" in checked else
                              {**asdict(current), **checked, "participants": current.participants})
        try:
            template = await self.repository.update_template(owner_id, template_id, checked)
        except DuplicateName:
            raise self._duplicate(checked.get("name", current.name)) from None
        if template is None:
            raise NotFound("No such template")
        return template

    async def set_default_template(self, owner_id: int, template_id: int) -> Template:
        return await self.update_template(owner_id, template_id, {"is_default": True})

    async def delete_template(self, owner_id: int, template_id: int) -> None:
        if not await self.repository.delete_template(owner_id, template_id):
            raise NotFound("No such template")

