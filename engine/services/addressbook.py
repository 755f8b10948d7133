"""Each account's address book: contacts and conference rooms to invite, and planning templates
(one of them the default that pre-fills Planning). Everything is scoped to its owner."""

from __future__ import annotations

from typing import Any

from engine.adapters.db.addressbook import AddressBookRepository
from engine.domain import accounts as rules
from engine.domain.accounts import Contact, Room, Template
from engine.domain.errors import NotFound, ValidationError

MAX_ENTRIES_PER_KIND = 1000


class AddressBookService:
    def __init__(self, repository: AddressBookRepository) -> None:
        self.repository = repository

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
            owner_id, rules.person_name(name, required=True), rules.dial_number(number), rules.email(email))

    async def update_contact(self, owner_id: int, contact_id: int, name: str, number: str,
                             email: str | None = None) -> Contact:
        contact = await self.repository.update_contact(
            owner_id, contact_id, rules.person_name(name, required=True), rules.dial_number(number),
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
            owner_id, rules.person_name(name, required=True), rules.dial_number(number),
            rules.person_name(location, "location"))

    async def update_room(self, owner_id: int, room_id: int, name: str, number: str, location: str = "") -> Room:
        room = await self.repository.update_room(
            owner_id, room_id, rules.person_name(name, required=True), rules.dial_number(number),
            rules.person_name(location, "location"))
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
        return await self.repository.insert_template(owner_id, checked)

    async def update_template(self, owner_id: int, template_id: int, values: dict[str, Any]) -> Template:
        template = await self.repository.update_template(owner_id, template_id, rules.template_values(values))
        if template is None:
            raise NotFound("No such template")
        return template

    async def set_default_template(self, owner_id: int, template_id: int) -> Template:
        return await self.update_template(owner_id, template_id, {"is_default": True})

    async def delete_template(self, owner_id: int, template_id: int) -> None:
        if not await self.repository.delete_template(owner_id, template_id):
            raise NotFound("No such template")

